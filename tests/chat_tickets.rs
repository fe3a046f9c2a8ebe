//! Chat tickets against a real server and real Redis: the JWT rules at the HTTP level, issuing,
//! one-time consumption under 1,000 concurrent consumers (Redis GETDEL, the Lua fallback, and the
//! TicketActor), expiry, maximum age, and an unreachable store. Runs on SQLite or PostgreSQL.

mod chat_support;
mod common;

use std::sync::Arc;
use std::time::Duration;

use chat_support::*;
use common::{proxy::Proxy, redis_url, Options, TestServer};
use deadpool_redis::redis;
use futures_util::future::join_all;
use serde_json::json;
use switchyard::auth::jwt::ChatIdentity;
use switchyard::chat::ticket_actor::ActorTicketStore;
use switchyard::chat::tickets::{
    ConsumeMode, RedisTicketStore, StoredTicket, TicketError, TicketGrant, TicketStore, Tickets,
};
use switchyard::config::RedisConfig;

fn identity() -> ChatIdentity {
    ChatIdentity { tenant_id: "t-1".into(), user_id: "u-1".into(), session_id: "s-1".into() }
}

fn redis_pool(url: &str) -> deadpool_redis::Pool {
    switchyard::redis_pool::connect(&RedisConfig {
        url: url.to_string(),
        pool_size: 32,
        key_prefix: "switchyard".into(),
        timeout_ms: 2000,
        backplane_stream: "backplane".into(),
    })
    .expect("redis pool")
    .expect("redis configured")
}

fn redis_store(mode: ConsumeMode) -> Arc<RedisTicketStore> {
    Arc::new(RedisTicketStore::new(redis_pool(&redis_url()), Duration::from_secs(2), mode))
}

fn tickets_over(store: Arc<dyn TicketStore>, ttl: Duration) -> Tickets {
    Tickets::new(store, ttl, Duration::from_secs(120))
}

// ---------------------------------------------------------------------------------------------
// The ticket endpoint and the JWT rules
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn jwt_errors_are_401_detail_with_www_authenticate() {
    let srv = chat_server(false).await;
    let expired = token_with(json!({"sub": "u", "tenant_id": "t", "exp": now_secs() - 3600}));
    let no_tenant = token_with(json!({"sub": "u", "exp": now_secs() + 300}));
    let forged = {
        let t = token("t", "u");
        let (head, _) = t.rsplit_once('.').unwrap();
        format!("{head}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    };
    let cases: Vec<(Option<String>, &str)> = vec![
        (None, "Authorization header required"),
        (Some("Basic dXNlcjpwYXNz".into()), "Invalid authorization header format. Expected: Bearer <token>"),
        (Some("Bearer".into()), "Invalid authorization header format. Expected: Bearer <token>"),
        (Some(format!("Bearer {expired}")), "Token has expired"),
        (Some(format!("Bearer {forged}")), "Invalid token"),
        (Some("Bearer not.a.jwt".into()), "Invalid token"),
        (Some(format!("Bearer {no_tenant}")), "Token missing required claim: tenant_id"),
    ];
    for (header, detail) in cases {
        let mut req = srv.client().post(srv.url("/api/agent/ticket"));
        if let Some(h) = &header {
            req = req.insert_header(("Authorization", h.as_str()));
        }
        let mut res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{header:?}");
        assert_eq!(res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"), "{header:?}");
        let body = common::json_body(&mut res).await;
        assert_eq!(body, json!({ "detail": detail }), "{header:?}");
    }
}

#[actix_rt::test]
async fn a_valid_jwt_gets_a_one_time_ticket() {
    let srv = chat_server(false).await;
    let (status, body, headers) = request_ticket(&srv, Some(&token("t-1", "u-1")), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 60);
    let ticket = body["ticket"].as_str().unwrap();
    assert_eq!(ticket.len(), 43, "32 bytes in unpadded base64");
    assert!(ticket.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    let (_, again, _) = request_ticket(&srv, Some(&token("t-1", "u-1")), None).await;
    assert_ne!(again["ticket"], body["ticket"], "every ticket is fresh");

    let (status, body, _) = request_ticket(&srv, Some(&token("t-1", "u-1")), Some(json!({"bogus": 1}))).await;
    assert_eq!(status, 400);
    assert!(body["detail"].as_str().unwrap().contains("bogus"), "{body}");
}

#[actix_rt::test]
async fn without_a_jwt_key_every_token_is_refused() {
    let srv = TestServer::start_with(Options::default()).await;
    let (status, body, _) = request_ticket(&srv, Some(&token("t", "u")), None).await;
    assert_eq!((status, body), (401, json!({"detail": "Invalid token"})));
}

#[actix_rt::test]
async fn redis_ticket_holds_the_grant_with_a_ttl() {
    let srv = chat_server(true).await;
    let (status, body, _) =
        request_ticket(&srv, Some(&token("t-9", "u-9")), Some(json!({"conversation_id": null}))).await;
    assert_eq!(status, 200, "{body}");
    let ticket = body["ticket"].as_str().unwrap();
    let pool = redis_pool(&redis_url());
    let mut conn = pool.get().await.unwrap();
    let key = format!("ws_ticket:{ticket}");
    let raw: String = redis::cmd("GET").arg(&key).query_async(&mut conn).await.unwrap();
    let stored: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(stored["tenant_id"], "t-9");
    assert_eq!(stored["user_id"], "u-9");
    assert_eq!(stored["session_id"], "s-1");
    assert!(stored["conversation_id"].is_null());
    let created = stored["created_at_ms"].as_i64().unwrap();
    assert!((now_secs() * 1000 - created).abs() < 5000);
    let pttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
    assert!((50_000..=60_000).contains(&pttl), "pttl {pttl}");
}

#[actix_rt::test]
async fn development_mode_needs_no_jwt_and_acts_as_dev_user() {
    let srv = TestServer::start_with(chat_options(true, &[("REQUIRE_AUTH", "false")])).await;
    let (status, body, _) = request_ticket(&srv, None, None).await;
    assert_eq!(status, 200, "{body}");
    let pool = redis_pool(&redis_url());
    let mut conn = pool.get().await.unwrap();
    let raw: String = redis::cmd("GET")
        .arg(format!("ws_ticket:{}", body["ticket"].as_str().unwrap()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let stored: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        (&stored["tenant_id"], &stored["user_id"], &stored["session_id"]),
        (&json!("dev-tenant"), &json!("dev-user"), &json!("dev-session"))
    );
}

#[test]
fn the_production_profile_refuses_development_mode() {
    let load = |env: &[(&str, &str)], profile: Option<&str>| {
        switchyard::config::Config::load(&switchyard::config::ConfigSources {
            profile: profile.map(str::to_string),
            config_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/config").into(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            overrides: Vec::new(),
        })
    };
    let err = load(&[("REQUIRE_AUTH", "false")], Some("production")).expect_err("refused").to_string();
    assert!(err.contains("chat.require_auth") && err.contains("REQUIRE_AUTH"), "{err}");
    assert!(load(&[("REQUIRE_AUTH", "false")], None).is_ok(), "allowed outside production");
    assert!(load(&[], Some("production")).is_ok());
    let err = load(&[("SWITCHYARD__CHAT__TICKET_STORE", "redis")], None).expect_err("refused").to_string();
    assert!(err.contains("chat.ticket_store"), "{err}");
    let err = load(&[("SWITCHYARD__CHAT__ORCHESTRATOR", "http")], None).expect_err("refused").to_string();
    assert!(err.contains("chat.orchestrator_url"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// One-time consumption under contention
// ---------------------------------------------------------------------------------------------

async fn exactly_one_of_1000_wins(tickets: Tickets) {
    let issued = tickets.issue(&identity(), Some("c-1".into())).await.expect("issue");
    let attempts = (0..1000).map(|_| {
        let tickets = tickets.clone();
        let ticket = issued.ticket.clone();
        actix_rt::spawn(async move { tickets.consume(&ticket).await })
    });
    let results = join_all(attempts).await;
    let mut wins = Vec::new();
    for r in results {
        match r.expect("task") {
            Ok(grant) => wins.push(grant),
            Err(TicketError::Invalid) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert_eq!(wins.len(), 1, "exactly one consumer gets the ticket");
    assert_eq!(wins[0].user_id, "u-1");
    assert_eq!(wins[0].conversation_id.as_deref(), Some("c-1"));
}

#[actix_rt::test]
async fn one_of_1000_concurrent_consumers_wins_with_redis_getdel() {
    let store = redis_store(ConsumeMode::Detect);
    exactly_one_of_1000_wins(tickets_over(store.clone(), Duration::from_secs(60))).await;
    assert_eq!(store.consume_mode(), Some(ConsumeMode::GetDel));
}

#[actix_rt::test]
async fn one_of_1000_concurrent_consumers_wins_with_the_lua_script() {
    let store = redis_store(ConsumeMode::Lua);
    exactly_one_of_1000_wins(tickets_over(store, Duration::from_secs(60))).await;
}

#[actix_rt::test]
async fn one_of_1000_concurrent_consumers_wins_with_the_ticket_actor() {
    let store = Arc::new(ActorTicketStore::start());
    exactly_one_of_1000_wins(tickets_over(store, Duration::from_secs(60))).await;
}

/// A real Redis whose GETDEL is renamed away, as on servers older than 6.2.
struct OldRedis {
    child: tokio::process::Child,
    url: String,
}

impl OldRedis {
    async fn start() -> OldRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--rename-command", "GETDEL", ""])
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/services)");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        OldRedis { child, url: format!("redis://127.0.0.1:{port}") }
    }
}

#[actix_rt::test]
async fn a_redis_without_getdel_is_detected_once_and_the_script_takes_over() {
    let mut old = OldRedis::start().await;
    let store = Arc::new(RedisTicketStore::new(redis_pool(&old.url), Duration::from_secs(2), ConsumeMode::Detect));
    assert_eq!(store.consume_mode(), None);
    let tickets = tickets_over(store.clone(), Duration::from_secs(60));
    exactly_one_of_1000_wins(tickets.clone()).await;
    assert_eq!(store.consume_mode(), Some(ConsumeMode::Lua));
    let t = tickets.issue(&identity(), None).await.unwrap();
    assert!(tickets.consume(&t.ticket).await.is_ok());
    assert!(matches!(tickets.consume(&t.ticket).await, Err(TicketError::Invalid)));
    let _ = old.child.kill().await;
}

// ---------------------------------------------------------------------------------------------
// Expiry, maximum age, tampering, malformed input
// ---------------------------------------------------------------------------------------------

async fn expiry_and_age_rules(store: Arc<dyn TicketStore>) {
    let short = tickets_over(store.clone(), Duration::from_millis(300));
    let t = short.issue(&identity(), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(matches!(short.consume(&t.ticket).await, Err(TicketError::Invalid)), "expired");

    // A record older than the maximum age is refused even though its TTL has not run out.
    let tickets = tickets_over(store.clone(), Duration::from_secs(60));
    let old_ticket = switchyard::auth::secrets::random_urlsafe(32).unwrap();
    let grant = TicketGrant {
        tenant_id: "t".into(),
        user_id: "u".into(),
        session_id: "s".into(),
        conversation_id: None,
        created_at_ms: switchyard::db::now_ms() - 121_000,
    };
    store
        .put(StoredTicket { ticket: old_ticket.clone(), grant: grant.clone() }, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(matches!(tickets.consume(&old_ticket).await, Err(TicketError::Invalid)), "too old");
    let young = switchyard::auth::secrets::random_urlsafe(32).unwrap();
    let mut fresh = grant.clone();
    fresh.created_at_ms = switchyard::db::now_ms() - 100_000;
    store.put(StoredTicket { ticket: young.clone(), grant: fresh }, Duration::from_secs(60)).await.unwrap();
    assert!(tickets.consume(&young).await.is_ok(), "younger than the maximum age");

    // Malformed tickets never match.
    for bad in ["", "short", &"x".repeat(44), &format!("{}!", &young[..42]), "../../etc/passwd"] {
        assert!(matches!(tickets.consume(bad).await, Err(TicketError::Invalid)), "{bad:?}");
    }
}

#[actix_rt::test]
async fn expiry_and_maximum_age_with_redis() {
    expiry_and_age_rules(redis_store(ConsumeMode::Detect)).await;
}

#[actix_rt::test]
async fn expiry_and_maximum_age_with_the_ticket_actor() {
    expiry_and_age_rules(Arc::new(ActorTicketStore::start())).await;
}

#[actix_rt::test]
async fn a_record_whose_ticket_differs_from_its_key_is_refused() {
    let store = redis_store(ConsumeMode::Detect);
    let tickets = tickets_over(store.clone(), Duration::from_secs(60));
    let key_ticket = switchyard::auth::secrets::random_urlsafe(32).unwrap();
    let other = switchyard::auth::secrets::random_urlsafe(32).unwrap();
    let record = json!({"ticket": other, "tenant_id": "t", "user_id": "u", "session_id": "s",
                        "conversation_id": null, "created_at_ms": switchyard::db::now_ms()});
    let pool = redis_pool(&redis_url());
    let mut conn = pool.get().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("ws_ticket:{key_ticket}"))
        .arg(record.to_string())
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(matches!(tickets.consume(&key_ticket).await, Err(TicketError::Invalid)));
}

// ---------------------------------------------------------------------------------------------
// An unreachable store
// ---------------------------------------------------------------------------------------------

#[actix_rt::test]
async fn unreachable_redis_answers_503_and_recovers() {
    let proxy = Proxy::start(&common::host_port(&redis_url())).await;
    let srv = TestServer::start_with(Options {
        redis_url: Some(format!("redis://{}", proxy.addr)),
        ..chat_options(true, &[])
    })
    .await;
    let jwt = token("t", "u");
    let (status, _, _) = request_ticket(&srv, Some(&jwt), None).await;
    assert_eq!(status, 200);

    proxy.down();
    let (status, body, _) = request_ticket(&srv, Some(&jwt), None).await;
    assert_eq!((status, body), (503, json!({"detail": "Ticket auth not configured"})));

    proxy.up().await;
    let mut status = 0;
    for _ in 0..50 {
        status = request_ticket(&srv, Some(&jwt), None).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "the endpoint recovers when Redis is back");
}

#[actix_rt::test]
async fn a_stopped_ticket_actor_is_an_unavailable_store() {
    use switchyard::chat::ticket_actor::TicketActor;
    let arbiter = actix::Arbiter::new();
    let addr = <TicketActor as actix::Actor>::start_in_arbiter(&arbiter.handle(), |_| TicketActor::default());
    let tickets = tickets_over(Arc::new(ActorTicketStore::new(addr)), Duration::from_secs(60));
    assert!(tickets.issue(&identity(), None).await.is_ok());
    arbiter.stop();
    let _ = arbiter.join();
    assert!(matches!(
        tickets.issue(&identity(), None).await,
        Err(TicketError::Store(switchyard::chat::tickets::StoreError::Unavailable(_)))
    ));
}

/// The chat ticket counters on `GET /metrics`: (issued, consumed, rejected).
async fn ticket_counters(srv: &TestServer) -> (f64, f64, f64) {
    let mut res = srv.client().get(srv.url("/metrics")).bearer_auth(common::MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    (
        value("switchyard_tickets_issued_total"),
        value("switchyard_tickets_consumed_total"),
        value("switchyard_tickets_rejected_total"),
    )
}

#[actix_rt::test]
async fn ticket_counters_on_metrics_move_as_tickets_are_issued_used_and_refused() {
    let srv = chat_server(false).await;
    // Counters are per process and other tests of this binary run meanwhile: movements are "at least".
    let (issued, consumed, rejected) = ticket_counters(&srv).await;
    let t = ticket(&srv, "t-m", "u-m").await;
    let mut socket = open(&srv, &format!("ticket={t}")).await;
    socket.send_json(json!({"type": "ping"})).await;
    assert_eq!(socket.event().await["type"], "pong");
    let mut reused = open(&srv, &format!("ticket={t}")).await;
    assert_eq!(reused.close_code().await.0, Some(4001));
    let mut forged = open(&srv, "ticket=not-a-ticket").await;
    assert_eq!(forged.close_code().await.0, Some(4001));
    let (issued2, consumed2, rejected2) = ticket_counters(&srv).await;
    assert!(issued2 >= issued + 1.0, "issued {issued} -> {issued2}");
    assert!(consumed2 >= consumed + 1.0, "consumed {consumed} -> {consumed2}");
    assert!(rejected2 >= rejected + 2.0, "rejected {rejected} -> {rejected2}");
}
