//! The foundation, end to end over HTTP against a real server: virtual keys through the admin API, the
//! master key's four sources, the error shape, and readiness as dependencies go down and come back.
//! Runs on SQLite or PostgreSQL (see tests/common).

mod common;

use std::time::Duration;

use awc::http::StatusCode;
use common::{json_body, proxy::Proxy, Options, TestServer, MASTER_KEY};
use serde_json::{json, Value};
use switchyard::db::{virtual_keys as repo, Database};

fn assert_error_shape(body: &Value, kind: &str) {
    assert_eq!(body["error"]["type"], kind, "body: {body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "body: {body}");
}

async fn create_key(srv: &TestServer, body: Value) -> Value {
    let mut res = srv
        .client()
        .post(srv.url("/api/virtualkeys"))
        .insert_header(("X-API-Key", MASTER_KEY))
        .send_json(&body)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    json_body(&mut res).await
}

async fn key_count(srv: &TestServer) -> i64 {
    let mut res = srv.client().get(srv.url("/api/virtualkeys")).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    json_body(&mut res).await["totalCount"].as_i64().unwrap()
}

#[actix_rt::test]
async fn key_lifecycle_create_list_update_disable_delete() {
    let srv = TestServer::start().await;
    let client = srv.client();

    let created = create_key(
        &srv,
        json!({"keyName": "acme", "description": "d", "allowedModels": "sim-image, dall-e-*", "rateLimitRpm": 60,
               "maxConnections": 5, "maxBudget": 12.5, "metadata": {"team": "a"}, "expiresAt": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let key = created["virtualKey"].as_str().unwrap();
    assert!(key.starts_with("condt_") && key.len() == 49, "{key}");
    let info = &created["keyInfo"];
    let id = info["id"].as_i64().unwrap();
    assert_eq!(info["keyName"], "acme");
    assert_eq!(info["allowedModels"], "sim-image,dall-e-*");
    assert_eq!(info["isEnabled"], true);
    assert_eq!(info["maxBudget"], 12.5);
    assert_eq!(info["currentSpend"], 0.0);
    assert_eq!(info["metadata"], json!({"team": "a"}));
    assert_eq!(info["expiresAt"], "2099-01-01T00:00:00.000Z");
    assert!(info.get("virtualKey").is_none() && info.get("keyHash").is_none());

    create_key(&srv, json!({"keyName": "second"})).await;
    let mut res =
        client.get(srv.url("/api/virtualkeys?page=1&pageSize=1")).bearer_auth(MASTER_KEY).send().await.unwrap();
    let page = json_body(&mut res).await;
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["totalPages"], 2);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], id);
    let listed = page.to_string();
    assert!(!listed.contains(key), "listing never shows the key");

    let mut res = client
        .put(srv.url(&format!("/api/virtualkeys/{id}")))
        .insert_header(("X-API-Key", MASTER_KEY))
        .send_json(&json!({"isEnabled": false, "maxBudget": null, "keyName": "acme-renamed"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let updated = json_body(&mut res).await;
    assert_eq!(updated["isEnabled"], false);
    assert_eq!(updated["maxBudget"], Value::Null);
    assert_eq!(updated["keyName"], "acme-renamed");
    assert_eq!(updated["rateLimitRpm"], 60, "absent fields are left alone");

    let mut res = client
        .get(srv.url(&format!("/api/virtualkeys/{id}")))
        .insert_header(("X-API-Key", MASTER_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(&mut res).await["isEnabled"], false);

    let res = client.delete(srv.url(&format!("/api/virtualkeys/{id}"))).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let mut res = client.get(srv.url(&format!("/api/virtualkeys/{id}"))).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_error_shape(&json_body(&mut res).await, "not_found_error");
    assert_eq!(key_count(&srv).await, 1);
}

#[actix_rt::test]
async fn only_the_hash_of_a_key_is_stored() {
    let srv = TestServer::start().await;
    let created = create_key(&srv, json!({"keyName": "hash-check"})).await;
    let key = created["virtualKey"].as_str().unwrap().to_string();
    let id = created["keyInfo"]["id"].as_i64().unwrap();

    // Read the row straight from the database the server uses.
    let db = Database::connect(&srv.config).unwrap();
    let row = repo::get(&db, id).await.unwrap().expect("row stored");
    assert_eq!(row.key_hash, switchyard::auth::secrets::sha256_hex(&key));
    let stored = format!("{row:?}");
    let random_part = &key["condt_".len()..];
    assert!(!stored.contains(random_part), "no column holds the key: {stored}");
    assert!(!stored.contains(&random_part[8..]), "not even its tail");
    assert!(repo::find_by_hash(&db, &row.key_hash).await.unwrap().is_some());
}

#[actix_rt::test]
async fn each_master_key_source_is_accepted() {
    let srv = TestServer::start().await;
    let client = srv.client();
    let url = srv.url("/api/virtualkeys");
    let statuses = [
        client.get(&url).insert_header(("X-API-Key", MASTER_KEY)).send().await.unwrap().status(),
        client.get(&url).insert_header(("X-Master-Key", MASTER_KEY)).send().await.unwrap().status(),
        client.get(&url).bearer_auth(MASTER_KEY).send().await.unwrap().status(),
        client.get(format!("{url}?access_token={MASTER_KEY}")).send().await.unwrap().status(),
    ];
    assert_eq!(statuses, [StatusCode::OK; 4]);
}

#[actix_rt::test]
async fn wrong_or_missing_master_key_gets_401_and_changes_nothing() {
    let srv = TestServer::start().await;
    let client = srv.client();
    let created = create_key(&srv, json!({"keyName": "keep"})).await;
    let id = created["keyInfo"]["id"].as_i64().unwrap();
    let url = srv.url("/api/virtualkeys");
    let item = srv.url(&format!("/api/virtualkeys/{id}"));

    let attempts = vec![
        client.post(&url).send_json(&json!({"keyName": "x"})).await.unwrap(),
        client.post(&url).insert_header(("X-API-Key", "wrong")).send_json(&json!({"keyName": "x"})).await.unwrap(),
        client.post(&url).insert_header(("X-Master-Key", "wrong")).send_json(&json!({"keyName": "x"})).await.unwrap(),
        client.post(&url).bearer_auth("wrong").send_json(&json!({"keyName": "x"})).await.unwrap(),
        client.post(format!("{url}?access_token=wrong")).send_json(&json!({"keyName": "x"})).await.unwrap(),
        client.put(&item).bearer_auth("wrong").send_json(&json!({"isEnabled": false})).await.unwrap(),
        client.delete(&item).insert_header(("X-API-Key", format!("{MASTER_KEY}x"))).send().await.unwrap(),
        client.get(&url).send().await.unwrap(),
    ];
    for mut res in attempts {
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_error_shape(&json_body(&mut res).await, "authentication_error");
    }
    assert_eq!(key_count(&srv).await, 1);
    let mut res = client.get(&item).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(json_body(&mut res).await["isEnabled"], true);
}

#[actix_rt::test]
async fn without_a_master_key_the_admin_api_is_unavailable() {
    let srv = TestServer::start_with(Options { master_key: None, ..Options::default() }).await;
    let mut res = srv.client().get(srv.url("/api/virtualkeys")).bearer_auth("anything").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = json_body(&mut res).await;
    assert_error_shape(&body, "service_unavailable");
    assert!(body["error"]["message"].as_str().unwrap().contains("CONDUIT_MASTER_KEY"));
}

#[actix_rt::test]
async fn bad_input_gets_400_or_404_in_the_error_shape_and_changes_nothing() {
    let srv = TestServer::start().await;
    let client = srv.client();
    let created = create_key(&srv, json!({"keyName": "steady", "rateLimitRpm": 10})).await;
    let id = created["keyInfo"]["id"].as_i64().unwrap();
    let url = srv.url("/api/virtualkeys");
    let item = srv.url(&format!("/api/virtualkeys/{id}"));
    let post =
        |body: &'static str| client.post(&url).bearer_auth(MASTER_KEY).content_type("application/json").send_body(body);

    let cases: Vec<(awc::ClientResponse<_>, &str)> = vec![
        (post("{\"keyName\": ").await.unwrap(), "Malformed JSON"),
        (post("").await.unwrap(), "body is required"),
        (post("[1,2]").await.unwrap(), "Invalid"),
        (post(r#"{"keyName": 5}"#).await.unwrap(), "keyName"),
        (post(r#"{"keyName": "a", "rateLimitRpm": "fast"}"#).await.unwrap(), "rateLimitRpm"),
        (post(r#"{"keyName": "a", "isEnable": false}"#).await.unwrap(), "isEnable"),
        (post(r#"{"keyName": "   "}"#).await.unwrap(), "keyName"),
        (post(r#"{"keyName": "a", "maxBudget": -1}"#).await.unwrap(), "maxBudget"),
        (post(r#"{"keyName": "a", "expiresAt": "tomorrow"}"#).await.unwrap(), "expiresAt"),
        (
            client
                .put(&item)
                .bearer_auth(MASTER_KEY)
                .content_type("application/json")
                .send_body(r#"{"rateLimitRpm": 0}"#)
                .await
                .unwrap(),
            "rateLimitRpm",
        ),
        (
            client
                .put(&item)
                .bearer_auth(MASTER_KEY)
                .content_type("application/json")
                .send_body(r#"{"isEnabled": null}"#)
                .await
                .unwrap(),
            "isEnabled",
        ),
        (client.get(srv.url("/api/virtualkeys/abc")).bearer_auth(MASTER_KEY).send().await.unwrap(), "abc"),
        (
            client.get(srv.url("/api/virtualkeys?pageSize=100000")).bearer_auth(MASTER_KEY).send().await.unwrap(),
            "pageSize",
        ),
        (client.get(srv.url("/api/virtualkeys?page=x")).bearer_auth(MASTER_KEY).send().await.unwrap(), "query"),
    ];
    for (mut res, needle) in cases {
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "case {needle}");
        let body = json_body(&mut res).await;
        assert_error_shape(&body, "invalid_request_error");
        assert!(body["error"]["message"].as_str().unwrap().contains(needle), "{needle}: {body}");
    }

    for path in ["/api/virtualkeys/999999"] {
        let mut res = client.get(srv.url(path)).bearer_auth(MASTER_KEY).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_error_shape(&json_body(&mut res).await, "not_found_error");
        let res =
            client.put(srv.url(path)).bearer_auth(MASTER_KEY).send_json(&json!({"isEnabled": false})).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let res = client.delete(srv.url(path)).bearer_auth(MASTER_KEY).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }

    assert_eq!(key_count(&srv).await, 1, "no bad request created a key");
    let mut res = client.get(&item).bearer_auth(MASTER_KEY).send().await.unwrap();
    let unchanged = json_body(&mut res).await;
    assert_eq!(unchanged["rateLimitRpm"], 10);
    assert_eq!(unchanged["isEnabled"], true);
}

async fn readiness(srv: &TestServer) -> (StatusCode, Value) {
    let mut res = srv.client().get(srv.url("/health/ready")).send().await.unwrap();
    let status = res.status();
    (status, json_body(&mut res).await)
}

/// Polls readiness until it reports `want` (pools may need a moment to notice a change).
async fn wait_for_readiness(srv: &TestServer, want: StatusCode) -> Value {
    let mut last = Value::Null;
    for _ in 0..40 {
        let (status, body) = readiness(srv).await;
        if status == want {
            return body;
        }
        last = body;
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("readiness never became {want}; last body {last}");
}

#[actix_rt::test]
async fn liveness_needs_no_auth_and_health_mirrors_readiness() {
    let srv = TestServer::start().await;
    let res = srv.client().get(srv.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut res = srv.client().get(srv.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = json_body(&mut res).await;
    assert_eq!(body["checks"]["database"]["status"], "Healthy");
    assert!(body["checks"].get("redis").is_none(), "no Redis configured, none checked");
}

#[actix_rt::test]
async fn readiness_follows_redis_down_and_back() {
    let redis = Proxy::start(&common::host_port(&common::redis_url())).await;
    let srv = TestServer::start_with(Options {
        redis: true,
        redis_url: Some(format!("redis://{}", redis.addr)),
        ..Options::default()
    })
    .await;
    let body = wait_for_readiness(&srv, StatusCode::OK).await;
    assert_eq!(body["checks"]["redis"]["status"], "Healthy");

    redis.down();
    let body = wait_for_readiness(&srv, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["status"], "Unhealthy");
    assert_eq!(body["checks"]["redis"]["status"], "Unhealthy");
    assert_eq!(body["checks"]["database"]["status"], "Healthy");
    let live = srv.client().get(srv.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), StatusCode::OK, "liveness does not depend on Redis");

    redis.up().await;
    let body = wait_for_readiness(&srv, StatusCode::OK).await;
    assert_eq!(body["checks"]["redis"]["status"], "Healthy");
}

#[actix_rt::test]
async fn readiness_follows_the_database_down_and_back() {
    if common::backend() != common::Backend::Postgres {
        // An embedded SQLite file cannot go away underneath open connections; this check belongs to the
        // PostgreSQL run.
        eprintln!("skipped on SQLite: the database is a local file");
        return;
    }
    let pg = Proxy::start(&common::host_port(&common::pg_admin_url())).await;
    let admin = common::pg_admin_url();
    let user =
        admin.split_once("://").and_then(|(_, r)| r.split_once('@')).map(|(u, _)| u.to_string()).unwrap_or_default();
    let srv = TestServer::start_with(Options {
        database_url: Some(format!("postgres://{user}@{}/{{db}}", pg.addr)),
        ..Options::default()
    })
    .await;
    wait_for_readiness(&srv, StatusCode::OK).await;

    pg.down();
    let body = wait_for_readiness(&srv, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["checks"]["database"]["status"], "Unhealthy");
    let mut res = srv.client().get(srv.url("/api/virtualkeys")).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "API calls fail cleanly while the database is away");
    assert_error_shape(&json_body(&mut res).await, "service_unavailable");

    pg.up().await;
    wait_for_readiness(&srv, StatusCode::OK).await;
    assert_eq!(key_count(&srv).await, 0);
}
