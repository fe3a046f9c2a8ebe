//! The spaces gateway over real HTTP and SSE: the flows of both key types, every 401 and 403 of the
//! permission matrix, impersonation attempts, gap-free seqs under 100 concurrent posters, stream resume,
//! revocation, the entity stream, and the run lifecycle with tool results.

mod common;

use std::time::Duration;

use awc::http::{Method, StatusCode};
use common::{Options, TestServer};
use futures_util::StreamExt;
use serde_json::{json, Value};

const SK: &str = "sk_0123456789abcdef0123456789abcdef0123456789abcdef";
const PK: &str = "pk_0123456789abcdef0123456789abcdef0123456789abcdef";
const JWT_SECRET: &str = "a-spaces-test-hmac-secret-of-at-least-32-bytes";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn jwt(claims: Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
}

fn user_jwt(external_id: &str) -> String {
    jwt(json!({ "sub": external_id, "exp": now() + 300 }))
}

/// Who sends a request.
#[derive(Clone)]
enum As {
    Secret,
    /// Public key + this user's JWT.
    User(String),
    /// Exactly these headers.
    Raw(Vec<(&'static str, String)>),
}

struct Api {
    srv: TestServer,
}

impl Api {
    async fn start() -> Api {
        Api::start_with(Vec::new()).await
    }

    async fn start_with(extra: Vec<(String, String)>) -> Api {
        let mut env = vec![
            ("HSAFA_SECRET_KEY".to_string(), SK.to_string()),
            ("HSAFA_PUBLIC_KEY".to_string(), PK.to_string()),
            ("JWT_SECRET".to_string(), JWT_SECRET.to_string()),
            ("SWITCHYARD__DATABASE__POOL_SIZE".to_string(), "8".to_string()),
        ];
        env.extend(extra);
        Api { srv: TestServer::start_with(Options { env, ..Options::default() }).await }
    }

    fn request(&self, who: &As, method: Method, path: &str) -> awc::ClientRequest {
        let mut req = self.srv.client().request(method, self.srv.url(path));
        match who {
            As::Secret => req = req.insert_header(("x-secret-key", SK)),
            As::User(ext) => {
                req = req.insert_header(("x-public-key", PK)).bearer_auth(user_jwt(ext));
            }
            As::Raw(headers) => {
                for (k, v) in headers {
                    req = req.insert_header((*k, v.as_str()));
                }
            }
        }
        req
    }

    async fn call(&self, who: &As, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let req = self.request(who, method, path);
        let mut res = match body {
            Some(b) => req.send_json(&b).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let status = res.status();
        let bytes = res.body().limit(10 << 20).await.unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("JSON from {path}, got {:?}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    async fn ok(&self, who: &As, method: Method, path: &str, body: Option<Value>, want: StatusCode) -> Value {
        let (status, value) = self.call(who, method.clone(), path, body).await;
        assert_eq!(status, want, "{method} {path}: {value}");
        value
    }

    async fn human(&self, external_id: &str) -> String {
        let v = self
            .ok(
                &As::Secret,
                Method::POST,
                "/api/entities",
                Some(json!({"type": "human", "externalId": external_id, "displayName": external_id})),
                StatusCode::CREATED,
            )
            .await;
        v["entity"]["id"].as_str().unwrap().to_string()
    }

    async fn agent_entity(&self, name: &str) -> (String, String) {
        let a = self
            .ok(
                &As::Secret,
                Method::POST,
                "/api/agents",
                Some(json!({"name": name, "config": {"model": name}})),
                StatusCode::CREATED,
            )
            .await;
        let agent_id = a["agentId"].as_str().unwrap().to_string();
        let e = self
            .ok(
                &As::Secret,
                Method::POST,
                "/api/entities/agent",
                Some(json!({"agentId": agent_id})),
                StatusCode::CREATED,
            )
            .await;
        (e["entity"]["id"].as_str().unwrap().to_string(), agent_id)
    }

    async fn space(&self, members: &[&str]) -> String {
        let s = self
            .ok(&As::Secret, Method::POST, "/api/smart-spaces", Some(json!({"name": "room"})), StatusCode::CREATED)
            .await;
        let id = s["smartSpace"]["id"].as_str().unwrap().to_string();
        for m in members {
            self.ok(
                &As::Secret,
                Method::POST,
                &format!("/api/smart-spaces/{id}/members"),
                Some(json!({"entityId": m})),
                StatusCode::CREATED,
            )
            .await;
        }
        id
    }

    async fn post(&self, who: &As, space: &str, body: Value) -> Value {
        self.ok(who, Method::POST, &format!("/api/smart-spaces/{space}/messages"), Some(body), StatusCode::CREATED)
            .await
    }

    async fn stream(&self, who: &As, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = self.request(who, Method::GET, path);
        if let Some(id) = last_event_id {
            req = req.insert_header(("Last-Event-ID", id));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "stream {path}");
        assert_eq!(res.headers().get("content-type").unwrap(), "text/event-stream");
        let mut sse = Sse { body: Box::pin(res.into_stream()), buf: String::new(), comments: 0 };
        // The opening comment arrives at once.
        assert!(sse.next_frame(Duration::from_secs(5)).await.is_some_and(|f| f.is_none()), "opening comment");
        sse
    }
}

/// A parsed SSE event.
#[derive(Debug, Clone)]
struct Event {
    id: String,
    event: String,
    data: Value,
}

type Body =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>>>;

struct Sse {
    body: Body,
    buf: String,
    comments: usize,
}

trait IntoStream {
    fn into_stream(self) -> Body;
}

impl<S> IntoStream for awc::ClientResponse<S>
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin + 'static,
{
    fn into_stream(self) -> Body {
        Box::pin(self)
    }
}

impl Sse {
    /// The next frame: `Some(None)` for a comment, `Some(Some(event))`, or `None` on timeout or end.
    async fn next_frame(&mut self, wait: Duration) -> Option<Option<Event>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
                let mut comment = false;
                for line in frame.lines() {
                    if line.starts_with(':') {
                        comment = true;
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_string();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if comment && data.is_empty() {
                    self.comments += 1;
                    return Some(None);
                }
                return Some(Some(Event { id, event, data: serde_json::from_str(&data).expect("JSON data") }));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.ok()?;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event, skipping comments; `None` on timeout or end of stream.
    async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
            match self.next_frame(left).await? {
                Some(e) => return Some(e),
                None => continue,
            }
        }
    }

    /// The next `n` events of type `kind` (others skipped).
    async fn take(&mut self, kind: &str, n: usize) -> Vec<Event> {
        let mut out = Vec::new();
        while out.len() < n {
            let e =
                self.next(Duration::from_secs(10)).await.unwrap_or_else(|| panic!("only {} {kind} events", out.len()));
            if e.data["type"] == kind {
                out.push(e);
            }
        }
        out
    }

    /// True when the server ended the stream within `wait`.
    async fn ended(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(chunk))) => {
                    let text = String::from_utf8_lossy(&chunk);
                    assert!(!text.contains("event: hsafa"), "no event after revocation: {text}");
                }
            }
        }
    }
}

/// A seq: a string in messages, a number in stream events (as the SDK types them).
fn seq(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| v.as_str().expect("seq is a string or a number").parse().unwrap())
}

#[actix_rt::test]
async fn secret_key_flow_entities_agents_spaces_messages_and_runs() {
    let api = Api::start().await;
    let s = As::Secret;
    // Agents: the same configuration is the same agent.
    let a = api
        .ok(
            &s,
            Method::POST,
            "/api/agents",
            Some(json!({"name": "helper", "config": {"b": 1, "a": [1, 2]}})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(a["created"], true);
    assert_eq!(a["configHash"].as_str().unwrap().len(), 64);
    let again =
        api.ok(&s, Method::POST, "/api/agents", Some(json!({"config": {"a": [1, 2], "b": 1}})), StatusCode::OK).await;
    assert_eq!(again["agentId"], a["agentId"]);
    assert_eq!(again["created"], false);
    let agent_id = a["agentId"].as_str().unwrap();
    let got = api.ok(&s, Method::GET, &format!("/api/agents/{agent_id}"), None, StatusCode::OK).await;
    assert_eq!(got["agent"]["configJson"], json!({"a": [1, 2], "b": 1}));
    assert_eq!(
        api.ok(&s, Method::GET, "/api/agents", None, StatusCode::OK).await["agents"].as_array().unwrap().len(),
        1
    );

    // Entities: an existing externalId is updated (200), a new one created (201).
    let alice = api.human("alice").await;
    let updated = api
        .ok(
            &s,
            Method::POST,
            "/api/entities",
            Some(json!({"type": "human", "externalId": "alice", "displayName": "Alice"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(updated["entity"]["id"], alice.as_str());
    assert_eq!(updated["entity"]["displayName"], "Alice");
    let sys = api
        .ok(
            &s,
            Method::POST,
            "/api/entities",
            Some(json!({"type": "system", "displayName": "billing", "metadata": {"k": 1}})),
            StatusCode::CREATED,
        )
        .await;
    let sys = sys["entity"]["id"].as_str().unwrap().to_string();
    let bad = api.call(&s, Method::POST, "/api/entities", Some(json!({"type": "robot"}))).await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
    assert!(bad.1["error"].is_string());
    let agent_entity = api
        .ok(
            &s,
            Method::POST,
            "/api/entities/agent",
            Some(json!({"agentId": agent_id, "externalId": "bot-1"})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(agent_entity["entity"]["type"], "agent");
    assert_eq!(agent_entity["entity"]["displayName"], "helper");
    let bot = agent_entity["entity"]["id"].as_str().unwrap().to_string();
    let humans = api.ok(&s, Method::GET, "/api/entities?type=human&limit=10", None, StatusCode::OK).await;
    assert_eq!(humans["entities"].as_array().unwrap().len(), 1);
    let patched = api
        .ok(&s, Method::PATCH, &format!("/api/entities/{sys}"), Some(json!({"displayName": "Billing"})), StatusCode::OK)
        .await;
    assert_eq!(patched["entity"]["displayName"], "Billing");
    assert_eq!(patched["entity"]["metadata"], json!({"k": 1}));

    // A space with members.
    let space = api.space(&[&alice, &bot, &sys]).await;
    let members = api.ok(&s, Method::GET, &format!("/api/smart-spaces/{space}/members"), None, StatusCode::OK).await;
    assert_eq!(members["members"].as_array().unwrap().len(), 3);
    assert_eq!(members["members"][0]["entity"]["externalId"], "alice");
    let role = api
        .ok(
            &s,
            Method::PATCH,
            &format!("/api/smart-spaces/{space}/members/{alice}"),
            Some(json!({"role": "owner"})),
            StatusCode::OK,
        )
        .await;
    assert_eq!(role["membership"]["role"], "owner");

    // Messages: the role follows the sender; each agent member other than the sender gets a run.
    let m1 = api.post(&s, &space, json!({"content": "hi", "entityId": alice})).await;
    assert_eq!(m1["message"]["role"], "user");
    assert_eq!(m1["message"]["seq"], "1");
    assert_eq!(m1["runs"].as_array().unwrap().len(), 1);
    assert_eq!(m1["runs"][0]["agentEntityId"], bot.as_str());
    let m2 = api.post(&s, &space, json!({"content": "hello", "entityId": bot})).await;
    assert_eq!(m2["message"]["role"], "assistant");
    assert_eq!(m2["runs"], json!([]), "the agent does not trigger itself");
    let m3 = api.post(&s, &space, json!({"content": "note", "entityId": sys, "triggerAgents": false})).await;
    assert_eq!(m3["message"]["role"], "system");
    assert_eq!(m3["runs"], json!([]));
    assert_eq!(m3["message"]["seq"], "3");
    let no_sender =
        api.call(&s, Method::POST, &format!("/api/smart-spaces/{space}/messages"), Some(json!({"content": "x"}))).await;
    assert_eq!(no_sender, (StatusCode::BAD_REQUEST, json!({"error": "entityId is required"})));
    let after =
        api.ok(&s, Method::GET, &format!("/api/smart-spaces/{space}/messages?afterSeq=1"), None, StatusCode::OK).await;
    let seqs: Vec<&Value> = after["messages"].as_array().unwrap().iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, vec!["2", "3"]);
    let before = api
        .ok(&s, Method::GET, &format!("/api/smart-spaces/{space}/messages?beforeSeq=3&limit=1"), None, StatusCode::OK)
        .await;
    assert_eq!(before["messages"][0]["seq"], "2");

    // Spaces: all, or an entity's.
    let _other = api.space(&[]).await;
    let all = api.ok(&s, Method::GET, "/api/smart-spaces", None, StatusCode::OK).await;
    assert_eq!(all["smartSpaces"].as_array().unwrap().len(), 2);
    let mine = api.ok(&s, Method::GET, &format!("/api/smart-spaces?entityId={alice}"), None, StatusCode::OK).await;
    assert_eq!(mine["smartSpaces"].as_array().unwrap().len(), 1);
    let renamed = api
        .ok(&s, Method::PATCH, &format!("/api/smart-spaces/{space}"), Some(json!({"name": "lobby"})), StatusCode::OK)
        .await;
    assert_eq!(renamed["smartSpace"]["name"], "lobby");

    // Runs.
    let run_id = m1["runs"][0]["runId"].as_str().unwrap().to_string();
    let run = api.ok(&s, Method::GET, &format!("/api/runs/{run_id}"), None, StatusCode::OK).await;
    assert_eq!(run["run"]["status"], "queued");
    assert_eq!(run["run"]["agentId"], agent_id);
    assert_eq!(run["run"]["triggerMessageId"], m1["message"]["id"]);
    let listed =
        api.ok(&s, Method::GET, &format!("/api/runs?smartSpaceId={space}&status=queued"), None, StatusCode::OK).await;
    assert_eq!(listed["runs"].as_array().unwrap().len(), 1);
    let created = api
        .ok(
            &s,
            Method::POST,
            "/api/runs",
            Some(json!({"smartSpaceId": space, "agentEntityId": bot})),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(created["status"], "queued");
    let new_run = created["runId"].as_str().unwrap();
    assert_eq!(created["streamUrl"], format!("/api/runs/{new_run}/stream"));
    let canceled = api.ok(&s, Method::POST, &format!("/api/runs/{new_run}/cancel"), None, StatusCode::OK).await;
    assert_eq!(canceled, json!({"success": true, "status": "canceled"}));
    let events = api.ok(&s, Method::GET, &format!("/api/runs/{new_run}/events"), None, StatusCode::OK).await;
    let types: Vec<&Value> = events["events"].as_array().unwrap().iter().map(|e| &e["type"]).collect();
    assert_eq!(types, vec!["run.created", "run.canceled"]);
    assert_eq!(
        api.ok(&s, Method::DELETE, &format!("/api/runs/{new_run}"), None, StatusCode::OK).await,
        json!({"success": true})
    );

    // Deletes answer {"success":true}; then 404.
    assert_eq!(
        api.ok(&s, Method::DELETE, &format!("/api/smart-spaces/{space}/members/{sys}"), None, StatusCode::OK).await,
        json!({"success": true})
    );
    assert_eq!(
        api.ok(&s, Method::DELETE, &format!("/api/entities/{sys}"), None, StatusCode::OK).await,
        json!({"success": true})
    );
    let gone = api.call(&s, Method::GET, &format!("/api/entities/{sys}"), None).await;
    assert_eq!(gone, (StatusCode::NOT_FOUND, json!({"error": "Entity not found"})));
    assert_eq!(
        api.ok(&s, Method::DELETE, &format!("/api/smart-spaces/{space}"), None, StatusCode::OK).await,
        json!({"success": true})
    );
    let gone = api.call(&s, Method::GET, &format!("/api/smart-spaces/{space}"), None).await;
    assert_eq!(gone, (StatusCode::NOT_FOUND, json!({"error": "SmartSpace not found"})));
    assert_eq!(
        api.ok(&s, Method::DELETE, &format!("/api/agents/{agent_id}"), None, StatusCode::OK).await,
        json!({"success": true})
    );
}

#[actix_rt::test]
async fn public_key_flow_acts_only_as_the_jwt_entity() {
    let api = Api::start().await;
    let alice = api.human("alice").await;
    let bob = api.human("bob").await;
    let (bot, _) = api.agent_entity("helper").await;
    let space = api.space(&[&alice, &bob, &bot]).await;
    let _not_mine = api.space(&[&bob]).await;
    let u = As::User("alice".into());

    let mine = api.ok(&u, Method::GET, "/api/smart-spaces", None, StatusCode::OK).await;
    assert_eq!(mine["smartSpaces"].as_array().unwrap().len(), 1);
    // ?entityId= cannot widen a JWT caller's list.
    let widened = api.ok(&u, Method::GET, &format!("/api/smart-spaces?entityId={bob}"), None, StatusCode::OK).await;
    assert_eq!(widened["smartSpaces"], mine["smartSpaces"]);
    api.ok(&u, Method::GET, &format!("/api/smart-spaces/{space}"), None, StatusCode::OK).await;
    api.ok(&u, Method::GET, &format!("/api/smart-spaces/{space}/members"), None, StatusCode::OK).await;

    // The sender is the JWT's entity, never the body's (impersonating bob fails silently: it is alice).
    let sent = api.post(&u, &space, json!({"content": "from alice", "entityId": bob, "role": "system"})).await;
    assert_eq!(sent["message"]["entityId"], alice.as_str());
    assert_eq!(sent["message"]["role"], "user");
    assert_eq!(sent["runs"].as_array().unwrap().len(), 1);
    let listed = api.ok(&u, Method::GET, &format!("/api/smart-spaces/{space}/messages"), None, StatusCode::OK).await;
    assert_eq!(listed["messages"][0]["content"], "from alice");

    // Runs of its spaces may be read, and tool results submitted there, once per call.
    let run_id = sent["runs"][0]["runId"].as_str().unwrap().to_string();
    api.ok(&u, Method::GET, &format!("/api/runs/{run_id}"), None, StatusCode::OK).await;
    api.ok(&u, Method::GET, &format!("/api/runs/{run_id}/events"), None, StatusCode::OK).await;
    let body = json!({"runId": run_id, "toolCallId": "call-1", "result": {"ok": true}, "source": "browser"});
    let first = api
        .ok(&u, Method::POST, &format!("/api/smart-spaces/{space}/tool-results"), Some(body.clone()), StatusCode::OK)
        .await;
    assert_eq!(first["success"], true);
    let second = api.call(&u, Method::POST, &format!("/api/smart-spaces/{space}/tool-results"), Some(body)).await;
    assert_eq!(second.0, StatusCode::CONFLICT);
    let second = api
        .call(
            &u,
            Method::POST,
            &format!("/api/runs/{run_id}/tool-results"),
            Some(json!({"callId": "call-1", "result": 2})),
        )
        .await;
    assert_eq!(second.0, StatusCode::CONFLICT, "the same call through the other route is a second submission");
    api.ok(
        &u,
        Method::POST,
        &format!("/api/runs/{run_id}/tool-results"),
        Some(json!({"callId": "call-2", "result": 2, "clientId": "tab-1"})),
        StatusCode::OK,
    )
    .await;
    let events = api.ok(&As::Secret, Method::GET, &format!("/api/runs/{run_id}/events"), None, StatusCode::OK).await;
    let outputs: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "tool-output-available")
        .map(|e| &e["data"]["toolCallId"])
        .collect();
    assert_eq!(outputs, vec!["call-1", "call-2"]);
}

#[actix_rt::test]
async fn every_401_text() {
    let api = Api::start().await;
    let alice = api.human("alice").await;
    let space = api.space(&[&alice]).await;
    let path = format!("/api/smart-spaces/{space}/messages");
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (vec![], "Authentication required. Provide x-secret-key, or x-public-key + Authorization header."),
        (vec![("x-secret-key", "sk_wrong".into())], "Invalid secret key"),
        (
            vec![("x-public-key", "pk_wrong".into()), ("authorization", format!("Bearer {}", user_jwt("alice")))],
            "Invalid public key",
        ),
        (vec![("x-public-key", PK.into())], "Missing or invalid Authorization header"),
        (
            vec![("x-public-key", PK.into()), ("authorization", "Basic abc".into())],
            "Missing or invalid Authorization header",
        ),
        (vec![("x-public-key", PK.into()), ("authorization", "Bearer not.a.jwt".into())], "Invalid or expired JWT"),
        (
            vec![
                ("x-public-key", PK.into()),
                ("authorization", format!("Bearer {}", jwt(json!({"sub": "alice", "exp": now() - 3600})))),
            ],
            "Invalid or expired JWT",
        ),
        (
            vec![
                ("x-public-key", PK.into()),
                ("authorization", format!("Bearer {}", jwt(json!({"exp": now() + 300})))),
            ],
            "JWT missing claim: sub",
        ),
        (vec![("authorization", format!("Bearer {}", user_jwt("alice")))], "Missing x-public-key header"),
    ];
    for (headers, text) in cases {
        let got = api.call(&As::Raw(headers.clone()), Method::GET, &path, None).await;
        assert_eq!(got, (StatusCode::UNAUTHORIZED, json!({"error": text})), "{headers:?}");
    }
    // A JWT signed with another key is refused.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": now() + 300}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
    )
    .unwrap();
    let got = api
        .call(
            &As::Raw(vec![("x-public-key", PK.into()), ("authorization", format!("Bearer {forged}"))]),
            Method::GET,
            &path,
            None,
        )
        .await;
    assert_eq!(got, (StatusCode::UNAUTHORIZED, json!({"error": "Invalid or expired JWT"})));
    // Secret-only routes without credentials.
    let got = api.call(&As::Raw(vec![]), Method::POST, "/api/entities", Some(json!({"type": "human"}))).await;
    assert_eq!(got, (StatusCode::UNAUTHORIZED, json!({"error": "Missing x-secret-key header"})));
    // The public key does not work as the secret key.
    let got = api.call(&As::Raw(vec![("x-secret-key", PK.into())]), Method::GET, "/api/entities", None).await;
    assert_eq!(got, (StatusCode::UNAUTHORIZED, json!({"error": "Invalid secret key"})));
}

#[actix_rt::test]
async fn every_403_of_the_permission_matrix() {
    let api = Api::start().await;
    let alice = api.human("alice").await;
    let bob = api.human("bob").await;
    let (bot, agent_id) = api.agent_entity("helper").await;
    let mine = api.space(&[&alice, &bot]).await;
    let theirs = api.space(&[&bob, &bot]).await;
    let their_msg = api.post(&As::Secret, &theirs, json!({"content": "x", "entityId": bob})).await;
    let their_run = their_msg["runs"][0]["runId"].as_str().unwrap().to_string();
    let my_msg = api.post(&As::Secret, &mine, json!({"content": "x", "entityId": alice})).await;
    let my_run = my_msg["runs"][0]["runId"].as_str().unwrap().to_string();
    let u = As::User("alice".into());
    let secret_only = "This operation requires the secret key";
    let not_member = "Entity is not a member of this SmartSpace";

    // Everything a public-key caller may not do at all.
    let forbidden: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/api/agents".into(), Some(json!({"config": {}}))),
        (Method::GET, "/api/agents".into(), None),
        (Method::GET, format!("/api/agents/{agent_id}"), None),
        (Method::DELETE, format!("/api/agents/{agent_id}"), None),
        (Method::POST, "/api/entities".into(), Some(json!({"type": "human", "externalId": "mallory"}))),
        (Method::POST, "/api/entities/agent".into(), Some(json!({"agentId": agent_id}))),
        (Method::GET, "/api/entities".into(), None),
        (Method::GET, format!("/api/entities/{alice}"), None),
        (Method::PATCH, format!("/api/entities/{alice}"), Some(json!({"displayName": "x"}))),
        (Method::DELETE, format!("/api/entities/{bob}"), None),
        (Method::GET, format!("/api/entities/{alice}/stream"), None),
        (Method::POST, "/api/smart-spaces".into(), Some(json!({}))),
        (Method::PATCH, format!("/api/smart-spaces/{mine}"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/smart-spaces/{mine}"), None),
        (Method::POST, format!("/api/smart-spaces/{theirs}/members"), Some(json!({"entityId": alice}))),
        (Method::PATCH, format!("/api/smart-spaces/{mine}/members/{alice}"), Some(json!({"role": "owner"}))),
        (Method::DELETE, format!("/api/smart-spaces/{mine}/members/{bot}"), None),
        (Method::GET, "/api/runs".into(), None),
        (Method::POST, "/api/runs".into(), Some(json!({"smartSpaceId": mine, "agentEntityId": bot}))),
        (Method::POST, format!("/api/runs/{my_run}/cancel"), None),
        (Method::DELETE, format!("/api/runs/{my_run}"), None),
        (
            Method::POST,
            format!("/api/runs/{my_run}/events"),
            Some(json!({"type": "text.delta", "data": {"delta": "x"}})),
        ),
    ];
    for (method, path, body) in forbidden {
        let got = api.call(&u, method.clone(), &path, body).await;
        assert_eq!(got, (StatusCode::FORBIDDEN, json!({"error": secret_only})), "{method} {path}");
    }
    // Everything of a space it is not a member of.
    let outside: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/smart-spaces/{theirs}"), None),
        (Method::GET, format!("/api/smart-spaces/{theirs}/members"), None),
        (Method::GET, format!("/api/smart-spaces/{theirs}/messages"), None),
        (Method::POST, format!("/api/smart-spaces/{theirs}/messages"), Some(json!({"content": "hi"}))),
        (Method::GET, format!("/api/smart-spaces/{theirs}/stream"), None),
        (
            Method::POST,
            format!("/api/smart-spaces/{theirs}/tool-results"),
            Some(json!({"runId": their_run, "toolCallId": "c", "result": 1})),
        ),
        (Method::GET, format!("/api/runs/{their_run}"), None),
        (Method::GET, format!("/api/runs/{their_run}/events"), None),
        (Method::GET, format!("/api/runs/{their_run}/stream"), None),
        (Method::POST, format!("/api/runs/{their_run}/tool-results"), Some(json!({"callId": "c", "result": 1}))),
        (Method::GET, "/api/smart-spaces/no-such-space".into(), None),
        // A run that does not exist answers as one of a foreign space: a member learns nothing.
        (Method::GET, "/api/runs/no-such-run".into(), None),
        (Method::GET, "/api/runs/no-such-run/events".into(), None),
        (Method::GET, "/api/runs/no-such-run/stream".into(), None),
        (Method::POST, "/api/runs/no-such-run/tool-results".into(), Some(json!({"callId": "c", "result": 1}))),
    ];
    for (method, path, body) in outside {
        let got = api.call(&u, method.clone(), &path, body).await;
        assert_eq!(got, (StatusCode::FORBIDDEN, json!({"error": not_member})), "{method} {path}");
    }
    // A run of another space submitted through a space the caller belongs to.
    let got = api
        .call(
            &u,
            Method::POST,
            &format!("/api/smart-spaces/{mine}/tool-results"),
            Some(json!({"runId": their_run, "toolCallId": "c", "result": 1})),
        )
        .await;
    assert_eq!(got, (StatusCode::BAD_REQUEST, json!({"error": "Run does not belong to this SmartSpace"})));
    let got = api
        .call(
            &u,
            Method::POST,
            &format!("/api/smart-spaces/{mine}/tool-results"),
            Some(json!({"runId": "no-such-run", "toolCallId": "c", "result": 1})),
        )
        .await;
    assert_eq!(got, (StatusCode::BAD_REQUEST, json!({"error": "Run does not belong to this SmartSpace"})));
    // Only the secret key is told that a run does not exist.
    let got = api.call(&As::Secret, Method::GET, "/api/runs/no-such-run", None).await;
    assert_eq!(got, (StatusCode::NOT_FOUND, json!({"error": "Run not found"})));
    // A valid JWT for a user without an entity.
    let got = api.call(&As::User("nobody".into()), Method::GET, "/api/smart-spaces", None).await;
    assert_eq!(got, (StatusCode::FORBIDDEN, json!({"error": "No entity found for this user"})));
    // The secret key naming a non-member sender.
    let got = api
        .call(
            &As::Secret,
            Method::POST,
            &format!("/api/smart-spaces/{theirs}/messages"),
            Some(json!({"content": "x", "entityId": alice})),
        )
        .await;
    assert_eq!(got, (StatusCode::FORBIDDEN, json!({"error": not_member})));
    // Nothing of the refused calls was written.
    let msgs =
        api.ok(&As::Secret, Method::GET, &format!("/api/smart-spaces/{theirs}/messages"), None, StatusCode::OK).await;
    assert_eq!(msgs["messages"].as_array().unwrap().len(), 1);
    let ents = api.ok(&As::Secret, Method::GET, "/api/entities", None, StatusCode::OK).await;
    assert_eq!(ents["entities"].as_array().unwrap().len(), 3);
}

#[actix_rt::test]
async fn a_hundred_concurrent_posters_get_unique_gap_free_seqs_seen_in_order_by_every_subscriber() {
    let api = Api::start().await;
    let mut people = Vec::new();
    for i in 0..5 {
        people.push(api.human(&format!("user-{i}")).await);
    }
    let refs: Vec<&str> = people.iter().map(String::as_str).collect();
    let space = api.space(&refs).await;
    let path = format!("/api/smart-spaces/{space}/stream");
    let mut secret_sub = api.stream(&As::Secret, &path, None).await;
    let mut user_sub = api.stream(&As::User("user-0".into()), &path, None).await;

    let posts = (0..100).map(|i| {
        let api = &api;
        let sender = people[i % people.len()].clone();
        let space = space.clone();
        async move { api.post(&As::Secret, &space, json!({"content": format!("m{i}"), "entityId": sender})).await }
    });
    let results = futures_util::future::join_all(posts).await;
    let mut seqs: Vec<i64> = results.iter().map(|r| seq(&r["message"]["seq"])).collect();
    seqs.sort();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>(), "unique and gap-free");

    for sub in [&mut secret_sub, &mut user_sub] {
        let events = sub.take("smartSpace.message", 100).await;
        let message_seqs: Vec<i64> = events.iter().map(|e| seq(&e.data["data"]["message"]["seq"])).collect();
        assert_eq!(message_seqs, (1..=100).collect::<Vec<_>>(), "seen in seq order");
        let event_seqs: Vec<i64> = events.iter().map(|e| seq(&e.data["seq"])).collect();
        assert!(event_seqs.windows(2).all(|w| w[0] < w[1]));
        for e in &events {
            assert_eq!(e.event, "hsafa");
            assert_eq!(e.id, seq(&e.data["seq"]).to_string());
            assert_eq!(e.data["smartSpaceId"], space.as_str());
            assert!(e.data["ts"].is_string() && e.data["id"].is_string());
            assert_eq!(e.data["entityType"], "human");
        }
    }
    let listed = api
        .ok(&As::Secret, Method::GET, &format!("/api/smart-spaces/{space}/messages?limit=200"), None, StatusCode::OK)
        .await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 100);
}

#[actix_rt::test]
async fn a_dropped_stream_resumes_with_exactly_the_missed_events() {
    let api = Api::start().await;
    let alice = api.human("alice").await;
    let space = api.space(&[&alice]).await;
    let path = format!("/api/smart-spaces/{space}/stream");
    let mut sub = api.stream(&As::User("alice".into()), &path, None).await;
    for i in 0..3 {
        api.post(&As::Secret, &space, json!({"content": format!("a{i}"), "entityId": alice})).await;
    }
    let seen = sub.take("smartSpace.message", 3).await;
    let last_id = seen[2].id.clone();
    drop(sub);
    for i in 0..4 {
        api.post(&As::Secret, &space, json!({"content": format!("b{i}"), "entityId": alice})).await;
    }
    // Resume while more are being posted: nothing lost or repeated at the seam.
    let mut resumed = api.stream(&As::User("alice".into()), &path, Some(&last_id)).await;
    for i in 0..3 {
        api.post(&As::Secret, &space, json!({"content": format!("c{i}"), "entityId": alice})).await;
    }
    let events = resumed.take("smartSpace.message", 7).await;
    let contents: Vec<&str> = events.iter().map(|e| e.data["data"]["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(contents, vec!["b0", "b1", "b2", "b3", "c0", "c1", "c2"]);
    assert!(resumed.next(Duration::from_millis(300)).await.is_none(), "nothing repeated");

    // ?afterSeq= replays from the start of the space.
    let mut replay = api.stream(&As::Secret, &format!("{path}?afterSeq=0"), None).await;
    let all = replay.take("smartSpace.message", 10).await;
    assert_eq!(all[0].data["data"]["message"]["content"], "a0");
    let joined =
        api.stream(&As::Secret, &format!("{path}?afterSeq=0"), None).await.take("smartSpace.member.joined", 1).await;
    assert_eq!(joined[0].data["seq"], 1);
}

#[actix_rt::test]
async fn removed_membership_and_deleted_space_end_delivery_at_once() {
    let api = Api::start().await;
    let alice = api.human("alice").await;
    let bob = api.human("bob").await;
    let space = api.space(&[&alice, &bob]).await;
    let path = format!("/api/smart-spaces/{space}/stream");
    let mut alice_sub = api.stream(&As::User("alice".into()), &path, None).await;
    let mut secret_sub = api.stream(&As::Secret, &path, None).await;
    api.ok(&As::Secret, Method::DELETE, &format!("/api/smart-spaces/{space}/members/{alice}"), None, StatusCode::OK)
        .await;
    api.post(&As::Secret, &space, json!({"content": "after", "entityId": bob})).await;
    assert!(alice_sub.ended(Duration::from_secs(2)).await, "the removed member's stream ends");
    let left = secret_sub.take("smartSpace.member.left", 1).await;
    assert_eq!(left[0].data["entityId"], alice.as_str());
    secret_sub.take("smartSpace.message", 1).await;
    api.ok(&As::Secret, Method::DELETE, &format!("/api/smart-spaces/{space}"), None, StatusCode::OK).await;
    assert!(secret_sub.ended(Duration::from_secs(2)).await, "a deleted space ends its streams");
}

#[actix_rt::test]
async fn the_entity_stream_follows_joins_and_leaves() {
    let api = Api::start().await;
    let (bot, _) = api.agent_entity("helper").await;
    let alice = api.human("alice").await;
    let first = api.space(&[&bot, &alice]).await;
    let mut sub = api.stream(&As::Secret, &format!("/api/entities/{bot}/stream"), None).await;
    let m = api.post(&As::Secret, &first, json!({"content": "one", "entityId": alice})).await;
    let created = sub.take("run.created", 1).await;
    assert_eq!(created[0].data["smartSpaceId"], first.as_str());
    assert_eq!(created[0].data["runId"], m["runs"][0]["runId"]);
    assert_eq!(created[0].data["agentEntityId"], bot.as_str());

    // A space joined after the stream opened flows at once.
    let second = api.space(&[&alice]).await;
    api.ok(
        &As::Secret,
        Method::POST,
        &format!("/api/smart-spaces/{second}/members"),
        Some(json!({"entityId": bot})),
        StatusCode::CREATED,
    )
    .await;
    api.post(&As::Secret, &second, json!({"content": "two", "entityId": alice})).await;
    let msg = sub.take("smartSpace.message", 1).await;
    assert_eq!(msg[0].data["smartSpaceId"], second.as_str());

    // A space left stops.
    api.ok(&As::Secret, Method::DELETE, &format!("/api/smart-spaces/{first}/members/{bot}"), None, StatusCode::OK)
        .await;
    api.post(&As::Secret, &first, json!({"content": "unseen", "entityId": alice})).await;
    api.post(&As::Secret, &second, json!({"content": "three", "entityId": alice})).await;
    let next = sub.take("smartSpace.message", 1).await;
    assert_eq!(next[0].data["data"]["message"]["content"], "three");
}

#[actix_rt::test]
async fn the_agent_runtime_reports_a_run_through_its_lifecycle() {
    let api = Api::start().await;
    let alice = api.human("alice").await;
    let (bot, _) = api.agent_entity("helper").await;
    let space = api.space(&[&alice, &bot]).await;
    let sent = api.post(&As::Secret, &space, json!({"content": "weather?", "entityId": alice})).await;
    let run = sent["runs"][0]["runId"].as_str().unwrap().to_string();
    let mut run_sub = api.stream(&As::User("alice".into()), &format!("/api/runs/{run}/stream?afterSeq=0"), None).await;
    let report = |t: &str, data: Value| {
        let api = &api;
        let run = run.clone();
        let t = t.to_string();
        async move {
            api.call(
                &As::Secret,
                Method::POST,
                &format!("/api/runs/{run}/events"),
                Some(json!({"type": t, "data": data})),
            )
            .await
        }
    };
    let status = |want: &'static str| {
        let api = &api;
        let run = run.clone();
        async move {
            let r = api.ok(&As::Secret, Method::GET, &format!("/api/runs/{run}"), None, StatusCode::OK).await;
            assert_eq!(r["run"]["status"], want);
        }
    };
    assert_eq!(report("run.started", json!({})).await.0, StatusCode::CREATED);
    status("running").await;
    report("text.delta", json!({"delta": "Let me check"})).await;
    report("tool-input-available", json!({"toolCallId": "t1", "toolName": "weather", "input": {}})).await;
    report("run.waiting_tool", json!({})).await;
    status("waiting_tool").await;
    api.ok(
        &As::User("alice".into()),
        Method::POST,
        &format!("/api/runs/{run}/tool-results"),
        Some(json!({"callId": "t1", "result": {"c": 21}})),
        StatusCode::OK,
    )
    .await;
    report("run.started", json!({})).await;
    report("run.completed", json!({"text": "21 degrees"})).await;
    status("completed").await;
    let late = report("text.delta", json!({"delta": "late"})).await;
    assert_eq!(late.0, StatusCode::CONFLICT);

    let mut types = Vec::new();
    while types.len() < 8 {
        let e = run_sub.next(Duration::from_secs(5)).await.expect("run stream event");
        assert_eq!(e.data["runId"], run.as_str(), "only this run's events");
        types.push(e.data["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        vec![
            "run.created",
            "run.started",
            "text.delta",
            "tool-input-available",
            "run.waiting_tool",
            "tool-output-available",
            "run.started",
            "run.completed"
        ]
    );
}

#[actix_rt::test]
async fn the_entity_stream_resumes_every_space_with_one_last_event_id() {
    let api = Api::start().await;
    let (bot, _) = api.agent_entity("helper").await;
    let alice = api.human("alice").await;
    let a = api.space(&[&bot, &alice]).await;
    let b = api.space(&[&bot, &alice]).await;
    let path = format!("/api/entities/{bot}/stream");
    let quiet = |content: &str, space: &str| {
        let api = &api;
        let (content, space, alice) = (content.to_string(), space.to_string(), alice.clone());
        async move {
            api.post(&As::Secret, &space, json!({"content": content, "entityId": alice, "triggerAgents": false})).await
        }
    };
    let mut sub = api.stream(&As::Secret, &path, None).await;
    quiet("a1", &a).await;
    quiet("b1", &b).await;
    let seen = sub.take("smartSpace.message", 2).await;
    let last_id = seen[1].id.clone();
    assert!(last_id.contains(&format!("{a}:")) && last_id.contains(&format!("{b}:")), "{last_id}");
    drop(sub);
    quiet("a2", &a).await;
    quiet("b2", &b).await;
    quiet("a3", &a).await;
    // A space joined while disconnected is replayed from the join.
    let c = api.space(&[&alice]).await;
    quiet("c0-before-join", &c).await;
    api.ok(
        &As::Secret,
        Method::POST,
        &format!("/api/smart-spaces/{c}/members"),
        Some(json!({"entityId": bot})),
        StatusCode::CREATED,
    )
    .await;
    quiet("c1", &c).await;

    let mut resumed = api.stream(&As::Secret, &path, Some(&last_id)).await;
    let events = resumed.take("smartSpace.message", 4).await;
    let in_space = |space: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e.data["smartSpaceId"] == space)
            .map(|e| e.data["data"]["message"]["content"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(in_space(&a), vec!["a2", "a3"]);
    assert_eq!(in_space(&b), vec!["b2"]);
    assert_eq!(in_space(&c), vec!["c1"]);
    assert!(resumed.next(Duration::from_millis(300)).await.is_none(), "nothing repeated");
    let bad = api
        .call(&As::Raw(vec![("x-secret-key", SK.into()), ("last-event-id", "x:y".into())]), Method::GET, &path, None)
        .await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST);
}

#[actix_rt::test]
async fn streams_open_with_a_comment_and_keep_alive() {
    let api = Api::start_with(vec![("SWITCHYARD__SPACES__KEEP_ALIVE_SECONDS".into(), "1".into())]).await;
    let alice = api.human("alice").await;
    let space = api.space(&[&alice]).await;
    let mut sub = api.stream(&As::User("alice".into()), &format!("/api/smart-spaces/{space}/stream"), None).await;
    assert!(sub.next(Duration::from_millis(2500)).await.is_none());
    assert!(sub.comments >= 2, "opening comment and at least one keep-alive, got {}", sub.comments);
}
