//! Two nodes serving the same hubs and spaces. Both servers share one database and one Redis (with the
//! same key prefix). What one node notices must reach the connections held by the other, through the
//! backplane, exactly once and in order.

mod common;

use std::time::Duration;

use awc::http::{Method, StatusCode};
use common::ws::{handshake_json, open_ws, read_until, Framed, RS};
use common::{json_body, Options, TestServer, MASTER_KEY};
use futures_util::StreamExt;
use serde_json::{json, Value};

const SK: &str = "sk_cluster_test_secret_key_0123456789abcdef01234567";

/// Node A on a fresh database and Redis namespace, then node B on the same ones.
async fn two_nodes() -> (TestServer, TestServer) {
    let env = vec![("HSAFA_SECRET_KEY".to_string(), SK.to_string())];
    let a = TestServer::start_with(Options { redis: true, env: env.clone(), ..Options::default() }).await;
    let mut shared = env;
    shared.push(("DATABASE_URL".into(), a.config.database.url.clone()));
    shared.push(("SWITCHYARD__REDIS__KEY_PREFIX".into(), a.config.redis.key_prefix.clone()));
    let b = TestServer::start_with(Options { redis: true, env: shared, ..Options::default() }).await;
    (a, b)
}

/// An admin hub connection, past its handshake and its InitialProviderHealth.
async fn admin(srv: &TestServer) -> (Framed, Value) {
    let mut framed = open_ws(srv, &format!("/hubs/admin-notifications?access_token={MASTER_KEY}")).await;
    handshake_json(&mut framed).await;
    let initial = read_until(&mut framed, |m| m["target"] == "InitialProviderHealth").await;
    (framed, initial)
}

/// How many invocations of `target` arrive within `wait`.
async fn count_arrivals(framed: &mut Framed, target: &str, wait: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + wait;
    let mut n = 0;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, framed.next()).await {
        if let awc::ws::Frame::Text(data) = frame {
            for record in String::from_utf8_lossy(&data).split(RS).filter(|r| !r.is_empty()) {
                let msg: Value = serde_json::from_str(record).unwrap();
                if msg["type"] == 1 && msg["target"] == target {
                    n += 1;
                }
            }
        }
    }
    n
}

#[actix_rt::test]
async fn admin_events_reach_the_operators_of_every_node_once() {
    let (a, b) = two_nodes().await;
    let (mut on_a, _) = admin(&a).await;
    let (mut on_b, _) = admin(&b).await;

    let mut res = a
        .client()
        .post(a.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "made-on-a"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let id = json_body(&mut res).await["keyInfo"]["id"].clone();
    assert!(id.is_i64());
    for framed in [&mut on_a, &mut on_b] {
        let created = read_until(framed, |m| m["target"] == "VirtualKeyCreated").await;
        assert_eq!(created["arguments"][0]["keyName"], "made-on-a");
        assert_eq!(created["arguments"][0]["id"], id);
        assert_eq!(count_arrivals(framed, "VirtualKeyCreated", Duration::from_millis(800)).await, 0, "exactly once");
    }

    // A provider reported unhealthy on B: A's operators hear of it, and A's table agrees afterwards.
    let res = b
        .client()
        .post(b.url("/api/providers/simulated/health"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"status": "Unhealthy", "details": "upstream 503s"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for framed in [&mut on_a, &mut on_b] {
        let update = read_until(framed, |m| m["target"] == "ProviderHealthUpdate").await;
        assert_eq!(update["arguments"][0]["status"], "Unhealthy");
        assert_eq!(update["arguments"][0]["details"], "upstream 503s");
        assert_eq!(count_arrivals(framed, "ProviderHealthUpdate", Duration::from_millis(500)).await, 0);
    }
    let (_, initial) = admin(&a).await;
    let simulated =
        initial["arguments"][0].as_array().unwrap().iter().find(|p| p["provider"] == "simulated").unwrap().clone();
    assert_eq!(simulated["status"], "Unhealthy", "{initial}");
}

async fn call(srv: &TestServer, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let req = srv.client().request(method, srv.url(path)).insert_header(("x-secret-key", SK));
    let mut res = match body {
        Some(b) => req.send_json(&b).await.unwrap(),
        None => req.send().await.unwrap(),
    };
    let status = res.status();
    (status, json_body(&mut res).await)
}

/// Opens a space or entity stream with the secret key.
async fn open_stream(
    url: String,
) -> impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> {
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let res = client.get(url).insert_header(("x-secret-key", SK)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("content-type").unwrap(), "text/event-stream");
    Box::pin(res)
}

/// The `smartSpace.message` seqs a stream at `url` delivers, until `n` arrived or it is quiet for 10 s.
async fn message_seqs(url: String, n: usize) -> Vec<i64> {
    let mut body = Box::pin(open_stream(url).await);
    let (mut buf, mut seqs) = (String::new(), Vec::new());
    while seqs.len() < n {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(10), body.next()).await else { break };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else { continue };
            let event: Value = serde_json::from_str(data).unwrap();
            if event["type"] == "smartSpace.message" {
                seqs.push(event["data"]["message"]["seq"].as_str().unwrap().parse().unwrap());
            }
        }
    }
    seqs
}

#[actix_rt::test]
async fn space_events_posted_on_both_nodes_reach_every_stream_in_seq_order() {
    let (a, b) = two_nodes().await;
    let mut people = Vec::new();
    for name in ["ann", "ben"] {
        let (status, v) =
            call(&a, Method::POST, "/api/entities", Some(json!({"type": "human", "externalId": name}))).await;
        assert_eq!(status, StatusCode::CREATED);
        people.push(v["entity"]["id"].as_str().unwrap().to_string());
    }
    let (_, s) = call(&a, Method::POST, "/api/smart-spaces", Some(json!({"name": "two nodes"}))).await;
    let space = s["smartSpace"]["id"].as_str().unwrap().to_string();
    for p in &people {
        let (status, _) =
            call(&a, Method::POST, &format!("/api/smart-spaces/{space}/members"), Some(json!({"entityId": p}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let stream = format!("/api/smart-spaces/{space}/stream");
    let on_a = actix_rt::spawn(message_seqs(a.url(&stream), 40));
    let on_b = actix_rt::spawn(message_seqs(b.url(&stream), 40));
    // Let both streams open before the posts begin.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let posts = (0..40).map(|i| {
        let (node, sender, path) =
            (if i % 2 == 0 { &a } else { &b }, &people[i % 2], format!("/api/smart-spaces/{space}/messages"));
        async move {
            let (status, v) =
                call(node, Method::POST, &path, Some(json!({"content": format!("m{i}"), "entityId": sender}))).await;
            assert_eq!(status, StatusCode::CREATED, "{v}");
        }
    });
    futures_util::future::join_all(posts).await;
    for (name, handle) in [("A", on_a), ("B", on_b)] {
        let seqs = handle.await.unwrap();
        assert_eq!(seqs.len(), 40, "node {name} delivered every message");
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "node {name}: gap-free, in seq order: {seqs:?}");
    }
}

#[actix_rt::test]
async fn a_membership_removed_on_one_node_ends_the_stream_on_the_other() {
    let (a, b) = two_nodes().await;
    let mut ids = Vec::new();
    for name in ["cat", "dan"] {
        let (_, v) = call(&a, Method::POST, "/api/entities", Some(json!({"type": "human", "externalId": name}))).await;
        ids.push(v["entity"]["id"].as_str().unwrap().to_string());
    }
    let (cat, dan) = (&ids[0], &ids[1]);
    let (_, s) = call(&a, Method::POST, "/api/smart-spaces", Some(json!({"name": "leaving"}))).await;
    let space = s["smartSpace"]["id"].as_str().unwrap().to_string();
    let messages = format!("/api/smart-spaces/{space}/messages");
    for id in &ids {
        let (status, _) =
            call(&a, Method::POST, &format!("/api/smart-spaces/{space}/members"), Some(json!({"entityId": id}))).await;
        assert_eq!(status, StatusCode::CREATED);
    }

    // Cat's entity stream lives on B; the membership is removed on A.
    let mut body = Box::pin(open_stream(b.url(&format!("/api/entities/{cat}/stream"))).await);
    let mut seen = String::new();
    let mut read_for = async |wait: Duration, seen: &mut String| {
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(wait, body.next()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = call(&a, Method::POST, &messages, Some(json!({"content": "before", "entityId": dan}))).await;
    assert_eq!(status, StatusCode::CREATED);
    read_for(Duration::from_millis(1000), &mut seen).await;
    assert!(seen.contains("\"before\""), "the stream on B receives what is posted on A: {seen}");

    let (status, _) = call(&a, Method::DELETE, &format!("/api/smart-spaces/{space}/members/{cat}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(&a, Method::POST, &messages, Some(json!({"content": "after", "entityId": dan}))).await;
    assert_eq!(status, StatusCode::CREATED);
    seen.clear();
    read_for(Duration::from_millis(1500), &mut seen).await;
    assert!(!seen.contains("\"after\""), "nothing of the space reaches a removed member on another node: {seen}");
}

#[actix_rt::test]
async fn a_key_disabled_on_one_node_loses_its_connections_on_the_other() {
    let (a, b) = two_nodes().await;
    let mut res = a
        .client()
        .post(a.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "cut-off"}))
        .await
        .unwrap();
    let created = json_body(&mut res).await;
    let (key, id) = (created["virtualKey"].as_str().unwrap().to_string(), created["keyInfo"]["id"].clone());
    let mut on_b = open_ws(&b, &format!("/hubs/image-generation?access_token={key}")).await;
    handshake_json(&mut on_b).await;

    let started = std::time::Instant::now();
    let res = a
        .client()
        .put(a.url(&format!("/api/virtualkeys/{id}")))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"isEnabled": false}))
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let close = read_until(&mut on_b, |m| m["type"] == 7).await;
    assert_eq!(close["error"], "Virtual key is disabled");
    assert!(started.elapsed() < Duration::from_secs(1), "closed within a second: {:?}", started.elapsed());
}

/// Negotiates on `srv` with `key`: `Ok(connectionId)` or `Err(the error text)`.
async fn negotiate(srv: &TestServer, key: &str) -> Result<String, String> {
    let body = common::negotiate_image_hub(srv, key).await;
    match body["connectionId"].as_str() {
        Some(id) => Ok(id.to_string()),
        None => Err(body["error"].as_str().unwrap_or_default().to_string()),
    }
}

#[actix_rt::test]
async fn a_key_s_connection_cap_holds_across_nodes() {
    let (a, b) = two_nodes().await;
    let mut res = a
        .client()
        .post(a.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "capped", "maxConnections": 2}))
        .await
        .unwrap();
    let key = json_body(&mut res).await["virtualKey"].as_str().unwrap().to_string();
    let mut on_a = open_ws(&a, &format!("/hubs/image-generation?access_token={key}")).await;
    handshake_json(&mut on_a).await;
    let mut on_b = open_ws(&b, &format!("/hubs/video-generation?access_token={key}")).await;
    handshake_json(&mut on_b).await;

    // Each node has room by itself; together the key is at its cap.
    for node in [&a, &b] {
        let refused = negotiate(node, &key).await.expect_err("a third connection is refused");
        assert!(refused.starts_with("Connection limit reached: at most 2 concurrent connections"), "{refused}");
    }

    // A place freed on B is usable from A.
    use futures_util::SinkExt;
    on_b.send(awc::ws::Message::Close(None)).await.unwrap();
    drop(on_b);
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match negotiate(&a, &key).await {
            Ok(_) => break,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.starts_with("Connection limit reached"), "{e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the place freed on B is still taken: {e}"),
        }
    }
}

/// The value of one unlabelled series in a `/metrics` scrape.
async fn metric(srv: &TestServer, name: &str) -> f64 {
    let mut res = srv.client().get(srv.url("/metrics")).bearer_auth(MASTER_KEY).send().await.unwrap();
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let line = text.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("{name}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[actix_rt::test]
async fn quiet_stream_followers_neither_fail_nor_miss_the_first_broadcast() {
    let (a, b) = two_nodes().await;
    // Longer than a blocking read: a client timeout shorter than the block would fail every read here.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(metric(&a, "switchyard_redis_errors_total").await, 0.0, "no Redis errors while idle");
    let (mut on_b, _) = admin(&b).await;
    let received = metric(&b, "switchyard_backplane_received_total").await;
    let res = a
        .client()
        .post(a.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "first"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created = read_until(&mut on_b, |m| m["target"] == "VirtualKeyCreated").await;
    assert_eq!(created["arguments"][0]["keyName"], "first");
    assert!(metric(&b, "switchyard_backplane_received_total").await > received);
}

#[actix_rt::test]
async fn refreshed_places_outlive_their_lease_and_places_of_a_dead_node_lapse() {
    use switchyard::config::RedisConfig;
    use switchyard::shared_counts::SharedCounts;
    let config = RedisConfig {
        url: common::redis_url(),
        pool_size: 4,
        key_prefix: format!("sy-test-{}", uuid::Uuid::new_v4().simple()),
        timeout_ms: 2000,
        backplane_stream: "backplane".into(),
    };
    let pool = switchyard::redis_pool::connect(&config).unwrap().unwrap();
    // The refresh script is loaded on demand: start from a Redis that has none.
    let mut conn = pool.get().await.unwrap();
    deadpool_redis::redis::cmd("SCRIPT").arg("FLUSH").query_async::<()>(&mut conn).await.unwrap();
    drop(conn);
    let lease = Duration::from_millis(800);
    let counts = SharedCounts::new(pool, config.key_prefix.clone(), lease, Duration::from_secs(2));
    let principal = "vkey:1";
    assert!(counts.reserve(principal, "c1", 2, &[]).await.unwrap());
    assert!(counts.reserve(principal, "c2", 2, &[]).await.unwrap());
    // Refreshed, the places outlive several leases.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        counts.refresh(vec![(principal.to_string(), vec!["c1".into(), "c2".into()])]).await.unwrap();
    }
    assert!(!counts.reserve(principal, "c3", 2, &[]).await.unwrap(), "both places still held");
    // A connection that just left here gives its place back within the next reservation.
    assert!(counts.reserve(principal, "c3", 2, &["c2".to_string()]).await.unwrap());
    // Nobody refreshes any more (the node died): the places lapse after the lease.
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    assert!(counts.reserve(principal, "c4", 2, &[]).await.unwrap());
    assert!(counts.reserve(principal, "c5", 2, &[]).await.unwrap());
    assert!(!counts.reserve(principal, "c6", 2, &[]).await.unwrap());
}

#[actix_rt::test]
async fn an_entry_appended_twice_by_a_retry_is_delivered_once() {
    let (a, _b) = two_nodes().await;
    let (mut admin_a, _) = admin(&a).await;
    let pool = switchyard::redis_pool::connect(&a.config.redis).unwrap().unwrap();
    let mut conn = pool.get().await.unwrap();
    let stream = a.config.redis.key(&a.config.redis.backplane_stream);
    let created = |name: &str| {
        json!({"kind": "hubInvocation", "hub": "/hubs/admin-notifications", "to": {"Group": "admins"},
               "target": "VirtualKeyCreated", "arguments": [{"keyName": name}]})
        .to_string()
    };
    // Another node's writer retried a batch that had already been appended: seq 1 arrives twice.
    for (seq, name) in [(1, "once"), (1, "once"), (2, "second")] {
        deadpool_redis::redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("node")
            .arg("node-elsewhere")
            .arg("seq")
            .arg(seq)
            .arg("msg")
            .arg(created(name))
            .query_async::<String>(&mut conn)
            .await
            .unwrap();
    }
    let first = read_until(&mut admin_a, |m| m["target"] == "VirtualKeyCreated").await;
    assert_eq!(first["arguments"][0]["keyName"], "once");
    let second = read_until(&mut admin_a, |m| m["target"] == "VirtualKeyCreated").await;
    assert_eq!(second["arguments"][0]["keyName"], "second", "the repeated entry was skipped");
    assert_eq!(count_arrivals(&mut admin_a, "VirtualKeyCreated", Duration::from_millis(500)).await, 0);
}
