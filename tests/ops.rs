//! Operators' endpoints against a real server: `GET /metrics` parses as strict Prometheus text and its
//! counters move as clients act (hub invocations, messages, auth failures, task updates delivered), the
//! master key guards it on the main address, and `ops.metrics_bind` serves it openly. Counters are
//! process-wide and tests of this binary run in parallel, so movements are checked as "at least".
//! Also: key changes made elsewhere (the CLI in another process, another node on the same database)
//! are announced and cut the key's live connections, through the key change log.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use actix_web::web::Bytes;
use awc::http::StatusCode;
use awc::ws;
use common::ws::{self as ws_helpers, handshake_json, invoke, next_data, read_until, Framed, RS};
use common::{json_body, Options, TestServer, MASTER_KEY};
use futures_util::SinkExt;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------
// A strict parser of the Prometheus text format 0.0.4.

/// One sample: metric name and sorted labels, printed back as `name{a="x",b="y"}`.
type Series = String;

#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: BTreeMap<Series, f64>,
}

impl Exposition {
    fn get(&self, series: &str) -> f64 {
        self.samples.get(series).copied().unwrap_or(0.0)
    }
}

fn valid_name(name: &str, first_extra: &[char]) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || first_extra.contains(&c))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || first_extra.contains(&c))
}

/// Parses `{a="x",b="y"}` from the start of `text`; returns the labels and the rest.
type Labels = Vec<(String, String)>;

fn parse_labels(text: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = text.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_name(name, &[]) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, '\n') => return Err("newline in label value".into()),
                (_, c) => value.push(c),
            }
        };
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} repeated"));
        }
        labels.push((name.to_string(), value));
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        t => t.parse::<f64>().map_err(|_| format!("bad value {t:?}")),
    }
}

/// The family a sample belongs to (histograms add `_bucket`, `_sum` and `_count`).
fn family<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram" || t == "summary") {
                return Some(base);
            }
        }
    }
    None
}

fn parse_exposition(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut helped = HashSet::new();
    let mut seen_samples_of = HashSet::new();
    if !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), Some(_)) if !helped.insert(name.to_string()) => {
                    return Err(at("HELP repeated".into()));
                }
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !valid_name(name, &[':']) {
                        return Err(at("bad metric name".into()));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if seen_samples_of.contains(name) {
                        return Err(at("TYPE after samples".into()));
                    }
                    if out.types.insert(name.to_string(), kind.to_string()).is_some() {
                        return Err(at("TYPE repeated".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !valid_name(name, &[':']) {
            return Err(at("bad metric name".into()));
        }
        let (mut labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (vec![], &line[name_end..])
        };
        let mut fields =
            rest.strip_prefix(' ').ok_or_else(|| at("expected a space before the value".into()))?.split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| at("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing text".into()));
        }
        let fam = family(name, &out.types).ok_or_else(|| at("sample without a TYPE".into()))?;
        seen_samples_of.insert(fam.to_string());
        let kind = &out.types[fam];
        if kind == "counter" && value < 0.0 {
            return Err(at("negative counter".into()));
        }
        if name.ends_with("_bucket") && kind == "histogram" && !labels.iter().any(|(n, _)| n == "le") {
            return Err(at("bucket without le".into()));
        }
        labels.sort();
        let series = if labels.is_empty() {
            name.to_string()
        } else {
            let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", inner.join(","))
        };
        if out.samples.insert(series, value).is_some() {
            return Err(at("series repeated".into()));
        }
    }
    // Histograms: cumulative buckets ending in +Inf, equal to _count.
    for (name, kind) in &out.types {
        if kind != "histogram" {
            continue;
        }
        let mut buckets: Vec<(f64, f64)> = out
            .samples
            .iter()
            .filter_map(|(s, v)| {
                let le = s.strip_prefix(&format!("{name}_bucket{{le=\""))?.strip_suffix("\"}")?;
                Some((parse_value(le).ok()?, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.last().map(|b| b.0) != Some(f64::INFINITY) {
            return Err(format!("histogram {name} lacks le=\"+Inf\""));
        }
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("histogram {name} buckets are not cumulative"));
        }
        if out.samples.get(&format!("{name}_count")) != Some(&buckets[buckets.len() - 1].1) {
            return Err(format!("histogram {name}: +Inf bucket differs from _count"));
        }
    }
    Ok(out)
}

#[test]
fn the_parser_is_strict() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"q\"} 3\n";
    assert_eq!(parse_exposition(ok).unwrap().get("a_total{x=\"1\"q\"}"), 3.0);
    for bad in [
        "a_total 1\n",                                                                             // no TYPE
        "# TYPE a counter\na{x=1} 1\n",                                                            // unquoted
        "# TYPE a counter\na 1\na 2\n",                                                            // repeated series
        "# TYPE a counter\na -1\n",                                                                // negative counter
        "# TYPE a counter\na one\n",                                                               // bad value
        "# TYPE a counter\na 1",                                                                   // no final newline
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n", // not cumulative
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------------

async fn scrape(srv: &TestServer) -> Exposition {
    let mut res = srv.client().get(srv.url("/metrics")).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let body = res.body().await.unwrap();
    let text = String::from_utf8(body.to_vec()).unwrap();
    parse_exposition(&text).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{text}"))
}

/// A raw WebSocket to `path` with the JSON handshake done.
async fn open_ws(srv: &TestServer, path: &str) -> Framed {
    let mut framed = ws_helpers::open_ws(srv, path).await;
    handshake_json(&mut framed).await;
    framed
}

fn server_options() -> Options {
    Options {
        env: vec![
            ("SWITCHYARD__SIGNALR__CONFORMANCE".into(), "true".into()),
            ("SWITCHYARD__GENERATION__SIMULATED_DURATION_MS".into(), "200".into()),
            ("SWITCHYARD__GENERATION__SIMULATED_STEPS".into(), "2".into()),
        ],
        ..Options::default()
    }
}

#[actix_rt::test]
async fn metrics_need_the_master_key_on_the_main_address() {
    let srv = TestServer::start_with(server_options()).await;
    let res = srv.client().get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = srv.client().get(srv.url("/metrics")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let after = scrape(&srv).await;
    assert!(after.get("switchyard_auth_failures_total{reason=\"master_key_invalid\"}") >= 1.0);
    assert!(after.get("switchyard_auth_failures_total{reason=\"master_key_missing\"}") >= 1.0);
    for family in [
        "switchyard_connections",
        "switchyard_invocations_total",
        "switchyard_task_delivery_latency_seconds",
        "switchyard_slow_consumers_dropped_total",
        "switchyard_storage_errors_total",
        "switchyard_redis_errors_total",
    ] {
        assert!(after.types.contains_key(family), "{family} missing");
    }
}

#[actix_rt::test]
async fn counters_move_as_clients_act() {
    let srv = TestServer::start_with(server_options()).await;
    let before = scrape(&srv).await;

    // Hub traffic on the conformance hub: one ok call, one failing call, one unknown method.
    let mut hub = open_ws(&srv, "/testhub").await;
    assert_eq!(invoke(&mut hub, "1", "Echo", json!(["hi"])).await["result"], "hi");
    assert!(invoke(&mut hub, "2", "ThrowException", json!(["boom"])).await["error"].is_string());
    assert!(invoke(&mut hub, "3", "NoSuchMethod", json!([])).await["error"].is_string());
    let during = scrape(&srv).await;
    let moved = |series: &str, by: f64| {
        let (a, b) = (before.get(series), during.get(series));
        assert!(b - a >= by, "{series}: {a} -> {b}, expected +{by}");
    };
    assert_eq!(during.get("switchyard_connections{hub=\"/testhub\",transport=\"WebSockets\"}"), 1.0);
    moved("switchyard_invocations_total{hub=\"/testhub\",method=\"Echo\",outcome=\"ok\"}", 1.0);
    moved("switchyard_invocations_total{hub=\"/testhub\",method=\"ThrowException\",outcome=\"error\"}", 1.0);
    moved("switchyard_invocations_total{hub=\"/testhub\",method=\"(unknown)\",outcome=\"error\"}", 1.0);
    moved("switchyard_messages_received_total", 3.0);
    moved("switchyard_messages_sent_total", 4.0);
    let _ = hub.close().await;

    // Refused credentials, by reason.
    let res =
        srv.client().post(srv.url("/hubs/image-generation/negotiate")).bearer_auth("condt_nope").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = srv.client().post(srv.url("/hubs/admin-notifications/negotiate")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // A task followed to its end by a subscribed connection: updates delivered, latency observed.
    let mut res = srv
        .client()
        .post(srv.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "metrics"}))
        .await
        .unwrap();
    let key = json_body(&mut res).await["virtualKey"].as_str().unwrap().to_string();
    let mut res = srv
        .client()
        .post(srv.url("/v1/images/generations/async"))
        .bearer_auth(&key)
        .send_json(&json!({"model": "sim-image", "prompt": "p"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let task = json_body(&mut res).await["taskId"].as_str().unwrap().to_string();
    let mut sub = open_ws(&srv, &format!("/hubs/image-generation?access_token={key}")).await;
    invoke(&mut sub, "1", "SubscribeToTask", json!([task])).await;
    read_until(&mut sub, |m| m["type"] == 1 && m["target"] == "TaskCompleted").await;
    let _ = sub.close().await;

    let after = scrape(&srv).await;
    let moved = |series: &str, by: f64| {
        let (a, b) = (before.get(series), after.get(series));
        assert!(b - a >= by, "{series}: {a} -> {b}, expected +{by}");
    };
    moved("switchyard_auth_failures_total{reason=\"invalid\"}", 1.0);
    moved("switchyard_auth_failures_total{reason=\"missing\"}", 1.0);
    moved("switchyard_task_updates_published_total", 1.0);
    moved("switchyard_task_updates_delivered_total", 1.0);
    moved("switchyard_task_delivery_latency_seconds_count", 1.0);
    moved(
        "switchyard_invocations_total{hub=\"/hubs/image-generation\",method=\"SubscribeToTask\",outcome=\"ok\"}",
        1.0,
    );
}

#[actix_rt::test]
async fn metrics_bind_serves_metrics_without_a_key() {
    let dir = common::TempDir::new();
    let mut options = server_options();
    options.env.push(("SWITCHYARD__OPS__METRICS_BIND".into(), "127.0.0.1:0".into()));
    let config = common::test_config(&options, &dir).await;
    let running = switchyard::server::start(config).await.expect("server starts");
    let metrics_addr = running.metrics_addr().expect("the open listener is up");
    let main = running.addr;
    let handle = running.handle.clone();
    actix_web::rt::spawn(running.wait());
    let client = awc::Client::default();
    let mut res = client.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    parse_exposition(&text).unwrap();
    // Only /metrics is there; the main address still wants the key.
    let res = client.get(format!("http://{metrics_addr}/api/stats")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = client.get(format!("http://{main}/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    handle.stop(true).await;
}

async fn connections(srv: &TestServer) -> Value {
    let mut res = srv.client().get(srv.url("/api/connections")).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    json_body(&mut res).await
}

#[actix_rt::test]
async fn operators_list_connections_without_secrets_and_close_one_with_a_reason() {
    let srv = TestServer::start_with(server_options()).await;
    assert_eq!(srv.client().get(srv.url("/api/connections")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let res = srv.client().delete(srv.url("/api/connections/x")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let mut res = srv
        .client()
        .post(srv.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "listed"}))
        .await
        .unwrap();
    let created = json_body(&mut res).await;
    let key = created["virtualKey"].as_str().unwrap().to_string();
    let key_id = created["keyInfo"]["id"].as_i64().unwrap();

    let mut anon = open_ws(&srv, "/testhub").await;
    let id = invoke(&mut anon, "1", "GetCallerConnectionId", json!([])).await["result"].as_str().unwrap().to_string();
    invoke(&mut anon, "2", "Echo", json!(["x"])).await;
    let mut keyed = open_ws(&srv, &format!("/hubs/image-generation?access_token={key}")).await;

    let list = connections(&srv).await;
    let text = list.to_string();
    assert!(!text.contains(&key), "the key must never be listed");
    assert!(!text.contains("access_token"), "no query strings");
    let all = list["connections"].as_array().unwrap();
    assert_eq!(list["count"], all.len());
    let anon_info = all.iter().find(|c| c["connectionId"] == id.as_str()).expect("the anonymous connection is listed");
    assert_eq!(anon_info["hub"], "/testhub");
    assert_eq!(anon_info["transport"], "WebSockets");
    assert_eq!(anon_info["principalKind"], Value::Null);
    assert_eq!(anon_info["remoteAddress"], "127.0.0.1");
    assert!(anon_info["messagesIn"].as_u64().unwrap() >= 2, "{anon_info}");
    assert!(anon_info["messagesOut"].as_u64().unwrap() >= 3, "{anon_info}");
    assert!(chrono::DateTime::parse_from_rfc3339(anon_info["connectedSince"].as_str().unwrap()).is_ok());
    let keyed_info = all.iter().find(|c| c["hub"] == "/hubs/image-generation").expect("the keyed connection is listed");
    assert_eq!(keyed_info["principalKind"], "vkey");
    assert_eq!(keyed_info["principalId"], key_id.to_string());
    for field in ["connectionToken", "token", "accessToken"] {
        assert!(keyed_info.get(field).is_none());
    }

    // Closing: the client gets a Close with the reason, and the connection leaves the list.
    let res = srv
        .client()
        .delete(srv.url(&format!("/api/connections/{id}?reason=maintenance%20window")))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let close = read_until(&mut anon, |m| m["type"] == 7).await;
    assert_eq!(close["error"], "maintenance window");
    assert!(close.get("allowReconnect").is_none_or(|v| v == false));
    let keyed_id = keyed_info["connectionId"].as_str().unwrap().to_string();
    let res = srv
        .client()
        .delete(srv.url(&format!("/api/connections/{keyed_id}")))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let close = read_until(&mut keyed, |m| m["type"] == 7).await;
    assert_eq!(close["error"], "Connection closed by an operator");

    let res = srv.client().delete(srv.url("/api/connections/nope")).bearer_auth(MASTER_KEY).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    for _ in 0..40 {
        let list = connections(&srv).await;
        if list["count"] == 0 {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("closed connections are still listed: {}", connections(&srv).await);
}

#[actix_rt::test]
async fn a_graceful_shutdown_tells_clients_to_reconnect_and_stops_the_server() {
    let dir = common::TempDir::new();
    let config = common::test_config(&server_options(), &dir).await;
    let running = switchyard::server::start(config).await.expect("server starts");
    let srv_base = format!("http://{}", running.addr);
    let shutdown = running.shutdown();
    let served = actix_web::rt::spawn(running.wait());
    let client = awc::Client::default();
    let url = format!("{}/testhub", srv_base.replacen("http", "ws", 1));
    let (_, mut socket) = client.ws(url).connect().await.expect("websocket opens");
    socket.send(ws::Message::Text(format!("{{\"protocol\":\"json\",\"version\":1}}{RS}").into())).await.unwrap();
    assert_eq!(next_data(&mut socket).await.unwrap(), Bytes::from(format!("{{}}{RS}")));

    let started = std::time::Instant::now();
    let stopping = actix_web::rt::spawn(async move { shutdown.run().await });
    let close = read_until(&mut socket, |m| m["type"] == 7).await;
    assert_eq!(close["allowReconnect"], true);
    assert_eq!(close["error"], switchyard::server::SHUTDOWN_REASON);
    assert!(next_data(&mut socket).await.is_none(), "the socket ends after the Close");
    actix_rt::time::timeout(Duration::from_secs(10), stopping).await.expect("shutdown finishes").unwrap();
    actix_rt::time::timeout(Duration::from_secs(10), served).await.expect("the server stops").unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "no wait for the timeout when clients leave");
    assert!(client.get(format!("{srv_base}/health/live")).send().await.is_err(), "nothing listens any more");
}

#[actix_rt::test]
async fn an_unparsable_allowed_network_stops_the_start() {
    let dir = common::TempDir::new();
    let mut options = server_options();
    options.env.push(("SWITCHYARD__NAVIGATION__ALLOWED_NETWORKS".into(), "127.0.0.0/8, not-a-network".into()));
    let config = common::test_config(&options, &dir).await;
    match switchyard::server::start(config).await {
        Ok(_) => panic!("a server started with an unparsable allowed network"),
        Err(e) => assert!(e.to_string().contains("navigation.allowed_networks"), "{e}"),
    }
}

#[actix_rt::test]
async fn operator_pages_are_served_from_their_folder_with_a_strict_policy() {
    let srv = TestServer::start_with(server_options()).await;
    for (path, content_type, marker) in [
        ("/admin", "text/html", "Operator console"),
        ("/test-admin-signalr.html", "text/html", "/hubs/admin-notifications"),
        ("/operator/signalr-lite.js", "text/javascript", "export class HubClient"),
        ("/operator/admin.js", "text/javascript", "/api/connections"),
        ("/operator/test-admin.js", "text/javascript", "dataset.method"),
        ("/operator/operator.css", "text/css", "body"),
    ] {
        let mut res = srv.client().get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_string();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let csp = res.headers().get("content-security-policy").unwrap().to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
        assert!(body.contains(marker), "{path}");
    }
    for path in ["/operator/../Cargo.toml", "/operator/other.js", "/operator/%2e%2e/Cargo.toml"] {
        let res = srv.client().get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }

    let mut options = server_options();
    options.env.push(("SWITCHYARD__OPS__PAGES_DIR".into(), String::new()));
    let off = TestServer::start_with(options).await;
    assert_eq!(off.client().get(off.url("/admin")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------------------
// Key changes made elsewhere: by `switchyard keys …` in another process, or by another node sharing the
// database. The running server learns of them from the key change log.

/// Runs the real binary's CLI against `srv`'s database; returns (success, stdout, stderr).
async fn cli(srv: &TestServer, args: &[&str]) -> (bool, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(args).env_clear().env("DATABASE_URL", &srv.config.database.url).env("RUST_LOG", "warn");
    for name in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(name) {
            cmd.env(name, v);
        }
    }
    let out = cmd.output().await.expect("the CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every hub message that arrives on `framed` within `window`.
async fn messages_within(framed: &mut Framed, window: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + window;
    while let Ok(Some(data)) =
        actix_rt::time::timeout(deadline.saturating_duration_since(std::time::Instant::now()), next_data(framed)).await
    {
        for record in String::from_utf8_lossy(&data).split(RS).filter(|r| !r.is_empty()) {
            seen.push(serde_json::from_str(record).unwrap());
        }
    }
    seen
}

fn is_event(m: &Value, target: &str, pick: impl Fn(&Value) -> bool) -> bool {
    m["type"] == 1 && m["target"] == target && pick(&m["arguments"][0])
}

#[actix_rt::test]
async fn key_changes_made_by_the_cli_are_announced_and_cut_live_connections() {
    let srv = TestServer::start_with(server_options()).await;
    let mut admin = open_ws(&srv, &format!("/hubs/admin-notifications?access_token={MASTER_KEY}")).await;
    read_until(&mut admin, |m| m["target"] == "InitialProviderHealth").await;

    let (ok, key, err) = cli(&srv, &["keys", "create", "--name", "made-by-cli", "--max-connections", "5"]).await;
    assert!(ok, "{err}");
    let key = key.trim().to_string();
    assert!(key.starts_with("condt_"), "{key}");
    let created = read_until(&mut admin, |m| is_event(m, "VirtualKeyCreated", |k| k["keyName"] == "made-by-cli")).await;
    let info = &created["arguments"][0];
    let id = info["id"].as_i64().unwrap();
    assert_eq!(info["maxConnections"], 5);
    assert!(!created.to_string().contains(&key), "the key itself is never announced");
    let subscribed = invoke(&mut admin, "s1", "SubscribeToVirtualKey", json!([id])).await;
    assert!(subscribed.get("error").is_none(), "{subscribed}");

    // Disabling through the CLI: operators are told, and the key's live client is closed within a second.
    let mut client = open_ws(&srv, &format!("/hubs/image-generation?access_token={key}")).await;
    let (ok, out, err) = cli(&srv, &["keys", "disable", &id.to_string()]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("virtual key {id} disabled"));
    let written = std::time::Instant::now();
    let close = read_until(&mut client, |m| m["type"] == 7).await;
    assert!(written.elapsed() < Duration::from_secs(1), "closed {:?} after the CLI finished", written.elapsed());
    assert_eq!(close["error"], "Virtual key is disabled");
    assert!(next_data(&mut client).await.is_none(), "the socket ends after the Close");
    let updated =
        read_until(&mut admin, |m| is_event(m, "VirtualKeyUpdated", |k| k["id"] == id && k["isEnabled"] == false))
            .await;
    assert_eq!(updated["arguments"][0]["keyName"], "made-by-cli");
    let update = read_until(&mut admin, |m| is_event(m, "VirtualKeyUpdate", |u| u["virtualKeyId"] == id)).await;
    let update = &update["arguments"][0];
    assert_eq!((update["updateType"].as_str(), update["priority"].as_str()), (Some("Disabled"), Some("high")));
    assert_eq!(update["details"], json!({"isEnabled": false}));
    let refused = srv
        .client()
        .post(srv.url("/v1/images/generations/async"))
        .bearer_auth(&key)
        .send_json(&json!({"model": "sim-image", "prompt": "x"}))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let (ok, _, err) = cli(&srv, &["keys", "enable", &id.to_string()]).await;
    assert!(ok, "{err}");
    let update = read_until(&mut admin, |m| is_event(m, "VirtualKeyUpdate", |u| u["virtualKeyId"] == id)).await;
    assert_eq!(update["arguments"][0]["updateType"], "Enabled");
    let mut client = open_ws(&srv, &format!("/hubs/image-generation?access_token={key}")).await;

    // Deleting through the CLI.
    let (ok, out, err) = cli(&srv, &["keys", "delete", &id.to_string()]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("virtual key {id} deleted"));
    let close = read_until(&mut client, |m| m["type"] == 7).await;
    assert_eq!(close["error"], "Virtual key was deleted");
    read_until(&mut admin, |m| is_event(m, "VirtualKeyDeleted", |d| d["virtualKeyId"] == id)).await;
    let update = read_until(&mut admin, |m| is_event(m, "VirtualKeyUpdate", |u| u["virtualKeyId"] == id)).await;
    assert_eq!(
        (update["arguments"][0]["updateType"].as_str(), update["arguments"][0]["priority"].as_str()),
        (Some("Deleted"), Some("high"))
    );

    // Bad input: a clear error, and nothing changes.
    for (args, message) in [
        (vec!["keys", "disable", "999999"], "no virtual key with id 999999"),
        (vec!["keys", "delete", "999999"], "no virtual key with id 999999"),
        (vec!["keys", "enable", "abc"], "'abc' is not a virtual key id"),
        (vec!["keys", "disable", "0"], "'0' is not a virtual key id"),
    ] {
        let (ok, _, err) = cli(&srv, &args).await;
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(message), "{args:?}: {err}");
    }

    // A change through this server's own admin API is announced once, at once, not again by the watcher.
    let mut res = srv
        .client()
        .post(srv.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "made-by-api"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let api_id = json_body(&mut res).await["keyInfo"]["id"].as_i64().unwrap();
    let seen = messages_within(&mut admin, Duration::from_millis(1200)).await;
    let announced = seen.iter().filter(|m| is_event(m, "VirtualKeyCreated", |k| k["id"] == api_id)).count();
    assert_eq!(announced, 1, "{seen:?}");
    let stray: Vec<&Value> = seen.iter().filter(|m| m["type"] == 1 && m["arguments"][0]["id"] == id).collect();
    assert!(stray.is_empty(), "the CLI's changes are announced only once: {stray:?}");
}

#[actix_rt::test]
async fn a_key_disabled_on_one_node_loses_its_connections_on_another() {
    let first = TestServer::start_with(server_options()).await;
    let mut options = server_options();
    options.database_url = Some(first.config.database.url.clone());
    let second = TestServer::start_with(options).await;
    assert_eq!(second.config.database.url, first.config.database.url, "both nodes share one database");

    let mut res = first
        .client()
        .post(first.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "two-nodes"}))
        .await
        .unwrap();
    let created = json_body(&mut res).await;
    let key = created["virtualKey"].as_str().unwrap().to_string();
    let id = created["keyInfo"]["id"].as_i64().unwrap();
    let mut on_second = open_ws(&second, &format!("/hubs/video-generation?access_token={key}")).await;
    let mut on_first = open_ws(&first, &format!("/hubs/image-generation?access_token={key}")).await;

    let res = first
        .client()
        .put(first.url(&format!("/api/virtualkeys/{id}")))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"isEnabled": false}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let written = std::time::Instant::now();
    assert_eq!(read_until(&mut on_first, |m| m["type"] == 7).await["error"], "Virtual key is disabled");
    assert_eq!(read_until(&mut on_second, |m| m["type"] == 7).await["error"], "Virtual key is disabled");
    assert!(written.elapsed() < Duration::from_secs(1), "the other node cut the key after {:?}", written.elapsed());

    // Spend recorded on the first node that reaches the budget cuts the key on the second as well.
    let mut res = first
        .client()
        .post(first.url("/api/virtualkeys"))
        .bearer_auth(MASTER_KEY)
        .send_json(&json!({"keyName": "two-nodes-budget", "maxBudget": 0.01}))
        .await
        .unwrap();
    let key = json_body(&mut res).await["virtualKey"].as_str().unwrap().to_string();
    let mut on_second = open_ws(&second, &format!("/hubs/image-generation?access_token={key}")).await;
    let res = first
        .client()
        .post(first.url("/v1/images/generations/async"))
        .bearer_auth(&key)
        .send_json(&json!({"model": "sim-image", "prompt": "x"}))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(read_until(&mut on_second, |m| m["type"] == 7).await["error"], "Virtual key budget exceeded");
}
