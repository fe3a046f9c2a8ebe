//! Generation over REST against a real server: job creation, status and cancel with a virtual key,
//! another key's tasks invisible, key rules (invalid, disabled, models, rate limits with and without
//! Redis), the workers' event endpoint, spend. The hub side is driven by the official client in
//! tests/node/generation.test.mjs.

mod common;

use std::time::Duration;

use awc::http::StatusCode;
use common::{json_body, negotiate_image_hub, Options, TestServer, MASTER_KEY};
use serde_json::{json, Value};

async fn create_key(srv: &TestServer, body: Value) -> (String, i64) {
    let mut res =
        srv.client().post(srv.url("/api/virtualkeys")).bearer_auth(MASTER_KEY).send_json(&body).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created = json_body(&mut res).await;
    (created["virtualKey"].as_str().unwrap().to_string(), created["keyInfo"]["id"].as_i64().unwrap())
}

async fn start_job(srv: &TestServer, key: &str, kind: &str, body: Value) -> (StatusCode, Value, Option<String>) {
    let mut res = srv
        .client()
        .post(srv.url(&format!("/v1/{kind}/generations/async")))
        .bearer_auth(key)
        .send_json(&body)
        .await
        .unwrap();
    let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (res.status(), json_body(&mut res).await, retry)
}

async fn status(srv: &TestServer, key: &str, kind: &str, id: &str) -> (StatusCode, Value) {
    let mut res = srv
        .client()
        .get(srv.url(&format!("/v1/{kind}/generations/{id}/status")))
        .insert_header(("X-API-Key", key))
        .send()
        .await
        .unwrap();
    (res.status(), json_body(&mut res).await)
}

async fn wait_status(srv: &TestServer, key: &str, kind: &str, id: &str, want: &str) -> Value {
    for _ in 0..100 {
        let (_, body) = status(srv, key, kind, id).await;
        if body["status"] == want {
            return body;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} never reached {want}");
}

fn fast_sim() -> Vec<(String, String)> {
    vec![
        ("SWITCHYARD__GENERATION__SIMULATED_DURATION_MS".into(), "400".into()),
        ("SWITCHYARD__GENERATION__SIMULATED_STEPS".into(), "4".into()),
    ]
}

#[actix_rt::test]
async fn an_image_job_runs_to_completion_and_only_its_key_sees_it() {
    let srv = TestServer::start_with(Options { env: fast_sim(), ..Options::default() }).await;
    let (key, _) = create_key(&srv, json!({"keyName": "a"})).await;
    let (other, _) = create_key(&srv, json!({"keyName": "b"})).await;

    let (code, created, _) = start_job(
        &srv,
        &key,
        "images",
        json!({"model": "sim-image", "prompt": "a lighthouse", "n": 2, "size": "256x256", "quality": "hd"}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(created["status"], "queued");
    let id = created["taskId"].as_str().unwrap().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(created["checkStatusUrl"], srv.url(&format!("/v1/images/generations/{id}/status")));
    assert!(created["createdAt"].as_str().is_some());

    let done = wait_status(&srv, &key, "images", &id, "completed").await;
    assert_eq!(done["progress"], 100);
    let url = done["result"]["imageUrl"].as_str().unwrap();
    assert_eq!(done["result"]["images"].as_array().unwrap().len(), 2);
    let mut picture = srv.client().get(url).send().await.unwrap();
    assert_eq!(picture.status(), StatusCode::OK);
    assert_eq!(picture.headers().get("content-type").unwrap(), "image/svg+xml");
    assert!(String::from_utf8_lossy(&picture.body().await.unwrap()).starts_with("<svg"));

    let (code, body) = status(&srv, &other, "images", &id).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "another key's task is not found, never forbidden");
    assert_eq!(body["error"]["message"], "Task not found");
    let res =
        srv.client().delete(srv.url(&format!("/v1/images/generations/{id}"))).bearer_auth(&other).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Video routes do not see image tasks.
    let (code, body) = status(&srv, &key, "videos", &id).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["message"], "Request not found");
}

#[actix_rt::test]
async fn video_jobs_and_cancel() {
    let mut env = fast_sim();
    env[0].1 = "3000".into();
    let srv = TestServer::start_with(Options { env, ..Options::default() }).await;
    let (key, _) = create_key(&srv, json!({"keyName": "v"})).await;
    let (code, created, _) = start_job(&srv, &key, "videos", json!({"model": "sim-video", "prompt": "waves"})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let id = created["requestId"].as_str().unwrap().to_string();
    let mut res =
        srv.client().delete(srv.url(&format!("/v1/videos/generations/{id}"))).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(&mut res).await["status"], "cancelled");
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    let (_, body) = status(&srv, &key, "videos", &id).await;
    assert_eq!(body["status"], "cancelled", "the simulated provider stops on cancel");
    let mut res =
        srv.client().delete(srv.url(&format!("/v1/videos/generations/{id}"))).bearer_auth(&key).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_body(&mut res).await["error"]["message"], "Task has already completed");

    let (_, failing, _) = start_job(&srv, &key, "videos", json!({"model": "sim-fail-video", "prompt": "x"})).await;
    let id = failing["requestId"].as_str().unwrap();
    let body = wait_status(&srv, &key, "videos", id, "failed").await;
    assert_eq!(body["error"], "Simulated provider failure");
}

#[actix_rt::test]
async fn unusable_keys_get_401_invalid_virtual_key() {
    let srv = TestServer::start().await;
    let (disabled, _) = create_key(&srv, json!({"keyName": "off", "isEnabled": false})).await;
    let (expired, _) = create_key(&srv, json!({"keyName": "old", "expiresAt": "2001-01-01T00:00:00Z"})).await;
    let (spent, spent_id) = create_key(&srv, json!({"keyName": "spent", "maxBudget": 1})).await;
    let (good, _) = create_key(&srv, json!({"keyName": "good"})).await;
    let db = switchyard::db::Database::connect(&srv.config).unwrap();
    let writer = switchyard::db::virtual_keys::ChangeWriter::command();
    switchyard::db::virtual_keys::add_spend(&db, spent_id, 1.0, &writer).await.unwrap();

    let body = json!({"model": "sim-image", "prompt": "x"});
    let client = srv.client();
    let url = srv.url("/v1/images/generations/async");
    let attempts = vec![
        client.post(&url).send_json(&body).await.unwrap(),
        client.post(&url).bearer_auth("condt_doesnotexist").send_json(&body).await.unwrap(),
        client.post(&url).bearer_auth(&good[..good.len() - 1]).send_json(&body).await.unwrap(),
        client.post(&url).bearer_auth(&disabled).send_json(&body).await.unwrap(),
        client.post(&url).insert_header(("X-API-Key", expired.as_str())).send_json(&body).await.unwrap(),
        client.post(&url).bearer_auth(&spent).send_json(&body).await.unwrap(),
        client.post(&url).bearer_auth(MASTER_KEY).send_json(&body).await.unwrap(),
    ];
    for mut res in attempts {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            json_body(&mut res).await,
            json!({"error": {"message": "Invalid Virtual Key", "type": "authentication_error"}})
        );
    }
    let (code, _, _) = start_job(&srv, &good, "images", body).await;
    assert_eq!(code, StatusCode::ACCEPTED);
}

#[actix_rt::test]
async fn models_outside_allowed_models_get_403_and_bad_bodies_400() {
    let srv = TestServer::start().await;
    let (key, _) = create_key(&srv, json!({"keyName": "m", "allowedModels": "SIM-image, dall-e-*"})).await;
    for model in ["sim-image", "Sim-Image", "dall-e-3"] {
        let (code, _, _) = start_job(&srv, &key, "images", json!({"model": model, "prompt": "x"})).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{model}");
    }
    let (code, body, _) = start_job(&srv, &key, "images", json!({"model": "sim-video", "prompt": "x"})).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["type"], "permission_error");
    for bad in [
        json!({"prompt": "x"}),
        json!({"model": "sim-image"}),
        json!({"model": "sim-image", "prompt": "x", "n": 0}),
        json!({"model": 5, "prompt": "x"}),
    ] {
        let (code, body, _) = start_job(&srv, &key, "images", bad.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

async fn rate_limits(redis: bool) {
    let srv = TestServer::start_with(Options { redis, ..Options::default() }).await;
    let (per_minute, _) = create_key(&srv, json!({"keyName": "rpm", "rateLimitRpm": 3})).await;
    let (per_day, _) = create_key(&srv, json!({"keyName": "rpd", "rateLimitRpd": 2})).await;
    let body = json!({"model": "sim-image", "prompt": "x"});
    for _ in 0..3 {
        assert_eq!(start_job(&srv, &per_minute, "images", body.clone()).await.0, StatusCode::ACCEPTED);
    }
    let (code, err, retry) = start_job(&srv, &per_minute, "images", body.clone()).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err["error"]["type"], "rate_limit_error");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");

    for _ in 0..2 {
        assert_eq!(start_job(&srv, &per_day, "videos", body.clone()).await.0, StatusCode::ACCEPTED);
    }
    let (code, _, retry) = start_job(&srv, &per_day, "images", body.clone()).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry));
}

#[actix_rt::test]
async fn rate_limits_in_process() {
    rate_limits(false).await;
}

#[actix_rt::test]
async fn rate_limits_in_redis_hold_across_nodes() {
    rate_limits(true).await;
    // Two nodes on one database and one Redis share the count.
    let shared =
        vec![("SWITCHYARD__REDIS__KEY_PREFIX".to_string(), format!("sy-test-{}", uuid::Uuid::new_v4().simple()))];
    let srv_a = TestServer::start_with(Options { redis: true, env: shared.clone(), ..Options::default() }).await;
    let (key, _) = create_key(&srv_a, json!({"keyName": "shared", "rateLimitRpm": 2})).await;
    let mut opts = Options { redis: true, env: shared, ..Options::default() };
    opts.database_url = Some(srv_a.config.database.url.clone());
    let srv_b = TestServer::start_with(opts).await;
    let body = json!({"model": "sim-image", "prompt": "x"});
    assert_eq!(start_job(&srv_a, &key, "images", body.clone()).await.0, StatusCode::ACCEPTED);
    assert_eq!(start_job(&srv_b, &key, "images", body.clone()).await.0, StatusCode::ACCEPTED);
    assert_eq!(start_job(&srv_a, &key, "images", body.clone()).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(start_job(&srv_b, &key, "images", body).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[actix_rt::test]
async fn workers_report_events_and_spend_is_added() {
    let srv = TestServer::start_with(Options {
        env: vec![("SWITCHYARD__GENERATION__WORKER_TOKEN".into(), "worker-secret".into())],
        ..Options::default()
    })
    .await;
    let (key, key_id) = create_key(&srv, json!({"keyName": "w", "maxBudget": 10})).await;
    let (_, created, _) = start_job(&srv, &key, "images", json!({"model": "external-model", "prompt": "x"})).await;
    let id = created["taskId"].as_str().unwrap().to_string();
    let events = srv.url(&format!("/api/tasks/{id}/events"));
    let client = srv.client();

    let res = client.post(&events).send_json(&json!({"type": "progress", "progress": 10})).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res =
        client.post(&events).bearer_auth(&key).send_json(&json!({"type": "progress", "progress": 10})).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a virtual key is not a worker credential");
    let mut res = client
        .post(&events)
        .insert_header(("X-Worker-Token", "worker-secret"))
        .send_json(&json!({"type": "progress", "progress": 40, "message": "rendering"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = json_body(&mut res).await;
    assert_eq!((body["status"].as_str(), body["progress"].as_i64()), (Some("processing"), Some(40)));
    for bad in [
        json!({"type": "progress", "progress": 101}),
        json!({"type": "exploded"}),
        json!({"type": "progress", "progress": "x"}),
    ] {
        let res = client.post(&events).bearer_auth(MASTER_KEY).send_json(&bad).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    let (_, now) = status(&srv, &key, "images", &id).await;
    assert_eq!(now["progress"], 40, "bad events changed nothing");

    let result = json!({"imageUrl": "https://cdn.example/x.png", "images": [{"url": "https://cdn.example/x.png"}]});
    let res = client
        .post(&events)
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"type": "completed", "result": result, "cost": 2.5}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = client
        .post(&events)
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"type": "failed", "error": "late"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT, "a finished task never changes");
    let (_, done) = status(&srv, &key, "images", &id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"], result);
    let mut res =
        client.get(srv.url(&format!("/api/virtualkeys/{key_id}"))).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(json_body(&mut res).await["currentSpend"], 2.5);
    let res = client
        .post(srv.url(&format!("/api/tasks/{}/events", uuid::Uuid::new_v4())))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"type": "processing"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[actix_rt::test]
async fn concurrent_spend_is_added_atomically() {
    let srv = TestServer::start().await;
    let (key, key_id) = create_key(&srv, json!({"keyName": "spender"})).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (_, created, _) = start_job(&srv, &key, "images", json!({"model": "external", "prompt": "x"})).await;
        ids.push(created["taskId"].as_str().unwrap().to_string());
    }
    let client = srv.client();
    let posts = ids.iter().map(|id| {
        client
            .post(srv.url(&format!("/api/tasks/{id}/events")))
            .bearer_auth(MASTER_KEY)
            .send_json(&json!({"type": "completed", "cost": 0.25}))
    });
    for res in futures_util::future::join_all(posts).await {
        assert_eq!(res.unwrap().status(), StatusCode::OK);
    }
    let mut res =
        client.get(srv.url(&format!("/api/virtualkeys/{key_id}"))).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(json_body(&mut res).await["currentSpend"], 5.0);
}

#[actix_rt::test]
async fn with_redis_jobs_go_to_the_jobs_stream_and_workers_report_through_the_events_stream() {
    use deadpool_redis::redis;
    let srv = TestServer::start_with(Options { redis: true, ..Options::default() }).await;
    let (key, _) = create_key(&srv, json!({"keyName": "streams"})).await;
    let (_, created, _) =
        start_job(&srv, &key, "images", json!({"model": "external-model", "prompt": "a fox", "style": "ink"})).await;
    let id = created["taskId"].as_str().unwrap().to_string();

    let pool = switchyard::redis_pool::connect(&srv.config.redis).unwrap().unwrap();
    let mut conn = pool.get().await.unwrap();
    let jobs: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(srv.config.redis.key("jobs")).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    assert_eq!(jobs.ids.len(), 1, "the new job is queued for external workers");
    let job = &jobs.ids[0];
    assert_eq!(job.get::<String>("taskId").as_deref(), Some(id.as_str()));
    assert_eq!(job.get::<String>("model").as_deref(), Some("external-model"));
    let request: Value = serde_json::from_str(&job.get::<String>("request").unwrap()).unwrap();
    assert_eq!(request["style"], "ink", "extra request fields reach the worker");

    let events = srv.config.redis.key("task-events");
    let _: String = redis::cmd("XADD")
        .arg(&events)
        .arg("*")
        .arg("taskId")
        .arg(&id)
        .arg("type")
        .arg("progress")
        .arg("progress")
        .arg("55")
        .query_async(&mut conn)
        .await
        .unwrap();
    let body = {
        let mut last = Value::Null;
        for _ in 0..50 {
            let (_, b) = status(&srv, &key, "images", &id).await;
            if b["progress"] == 55 {
                last = b;
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(100)).await;
        }
        last
    };
    assert_eq!(body["status"], "processing", "the worker's event was stored");
    let result = json!({"imageUrl": "https://cdn.example/fox.png", "images": [{"url": "https://cdn.example/fox.png"}]});
    let _: String = redis::cmd("XADD")
        .arg(&events)
        .arg("*")
        .arg("taskId")
        .arg(&id)
        .arg("type")
        .arg("completed")
        .arg("result")
        .arg(result.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
    let done = wait_status(&srv, &key, "images", &id, "completed").await;
    assert_eq!(done["result"], result);
}

#[actix_rt::test]
async fn a_key_that_connects_abusively_fast_is_cooled_down() {
    let srv = TestServer::start_with(Options {
        env: vec![
            ("SWITCHYARD__GENERATION__CONNECT_BURST".into(), "5".into()),
            ("SWITCHYARD__GENERATION__CONNECT_WINDOW_SECONDS".into(), "10".into()),
            ("SWITCHYARD__GENERATION__CONNECT_COOLDOWN_SECONDS".into(), "30".into()),
        ],
        ..Options::default()
    })
    .await;
    let (key, _) = create_key(&srv, json!({"keyName": "hammer"})).await;
    let (calm, _) = create_key(&srv, json!({"keyName": "calm"})).await;
    for _ in 0..5 {
        assert!(negotiate_image_hub(&srv, &key).await.get("connectionId").is_some());
    }
    let refused = negotiate_image_hub(&srv, &key).await;
    assert!(refused["error"].as_str().unwrap().starts_with("Too many connection attempts"), "{refused}");
    let still = negotiate_image_hub(&srv, &key).await;
    assert!(still.get("error").is_some(), "the cool-down holds");
    assert!(negotiate_image_hub(&srv, &calm).await.get("connectionId").is_some(), "other keys are unaffected");
}

#[actix_rt::test]
async fn an_expiring_key_loses_its_live_connection_within_a_second() {
    use awc::ws;
    use futures_util::{SinkExt, StreamExt};
    let srv = TestServer::start().await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (key, _) = create_key(&srv, json!({"keyName": "short-lived", "expiresAt": expires.to_rfc3339()})).await;
    let url = srv.url(&format!("/hubs/image-generation?access_token={key}")).replacen("http", "ws", 1);
    let (_, mut framed) = srv.client().ws(url).connect().await.expect("a live key connects");
    framed.send(ws::Message::Text("{\"protocol\":\"json\",\"version\":1}\u{1e}".into())).await.unwrap();
    let mut close = None;
    while let Ok(Some(Ok(frame))) = actix_rt::time::timeout(Duration::from_secs(5), framed.next()).await {
        if let ws::Frame::Text(b) = frame {
            let text = String::from_utf8_lossy(&b).to_string();
            if text.contains("\"type\":7") {
                close = Some((chrono::Utc::now(), text));
                break;
            }
        }
    }
    let (at, text) = close.expect("a Close message arrives");
    assert!(text.contains("Virtual key has expired"), "{text}");
    let late = (at - expires).num_milliseconds();
    assert!((-100..1000).contains(&late), "closed {late} ms after expiry");
}
