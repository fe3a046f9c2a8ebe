//! The `switchyard` binary as a newcomer runs it: from an empty folder with no services, on its embedded
//! defaults; its key bootstrap; its refusal to start half-configured; and its logs, which must never
//! carry a secret.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The binary with an empty environment (only PATH and HOME), run in `dir`.
fn command(dir: &TempDir) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(&dir.path).env_clear();
    for name in ["PATH", "HOME"] {
        if let Ok(v) = std::env::var(name) {
            cmd.env(name, v);
        }
    }
    cmd
}

struct Served {
    child: Child,
    base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &TempDir, extra_env: &[(&str, &str)]) -> Served {
    let port = free_port();
    let mut cmd = command(dir);
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")]).stdout(Stdio::null()).stderr(Stdio::piped());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("binary starts");
    Served { child, base: format!("http://127.0.0.1:{port}") }
}

async fn wait_healthy(base: &str) {
    let client = awc::Client::default();
    for _ in 0..100 {
        if let Ok(res) = client.get(format!("{base}/health")).send().await {
            if res.status().is_success() {
                return;
            }
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server at {base} never became healthy");
}

fn stop_and_read_log(mut served: Served) -> String {
    let _ = served.child.kill();
    let output =
        std::mem::replace(&mut served.child, Command::new("true").spawn().unwrap()).wait_with_output().unwrap();
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[actix_rt::test]
async fn serves_on_embedded_defaults_from_an_empty_folder() {
    let dir = TempDir::new();
    let served = serve(&dir, &[]);
    wait_healthy(&served.base).await;
    let mut res = awc::Client::default().get(format!("{}/health", served.base)).send().await.unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["database"]["backend"], "sqlite");
    assert!(dir.path.join("data/switchyard.sqlite3").exists(), "the SQLite file is created on first start");
    // No master key configured: admin answers 503 and the log says how to set one.
    let res = awc::Client::default().get(format!("{}/api/virtualkeys", served.base)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    let log = stop_and_read_log(served);
    assert!(log.contains("CONDUIT_MASTER_KEY"), "start-up log explains the master key: {log}");
}

#[actix_rt::test]
async fn keys_created_by_the_cli_are_printed_once_and_usable_by_the_api() {
    let dir = TempDir::new();
    let out = command(&dir).args(["keys", "create", "--name", "bootstrap", "--max-connections", "3"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("condt_") && key.len() == 49, "stdout is exactly the key: {key:?}");

    let listed = command(&dir).args(["keys", "list"]).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("bootstrap") && !listed.contains(&key[6..]), "{listed}");

    let served = serve(&dir, &[("CONDUIT_MASTER_KEY", "cli-master")]);
    wait_healthy(&served.base).await;
    let mut res = awc::Client::default()
        .get(format!("{}/api/virtualkeys", served.base))
        .bearer_auth("cli-master")
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["items"][0]["keyName"], "bootstrap");
    assert_eq!(body["items"][0]["maxConnections"], 3);
}

#[test]
fn a_bad_setting_stops_the_start_and_names_the_setting() {
    let dir = TempDir::new();
    let cases: [(&str, &str, &str); 4] = [
        ("SWITCHYARD__SERVER__BIND", "not-an-address", "server.bind"),
        ("SWITCHYARD__DATABASE__POOL_SIZE", "lots", "database.pool_size"),
        ("DATABASE_URL", "mysql://x", "database.url"),
        ("SWITCHYARD__SERVER__NOPE", "1", "server.nope"),
    ];
    for (name, value, setting) in cases {
        let out = command(&dir).arg("serve").env(name, value).output().unwrap();
        assert!(!out.status.success(), "{name}={value} must not start");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(setting), "{name}: {err}");
    }
    let out = command(&dir).args(["serve", "--profile", "missing"]).output().unwrap();
    assert!(!out.status.success());
    assert!(!dir.path.join("data").exists(), "nothing was created by a refused start");
}

#[actix_rt::test]
async fn secrets_never_reach_the_log() {
    let dir = TempDir::new();
    let master = "master-SECRET-value-1";
    let served = serve(&dir, &[("CONDUIT_MASTER_KEY", master), ("RUST_LOG", "trace")]);
    wait_healthy(&served.base).await;
    let client = awc::Client::default();
    let base = &served.base;
    let mut res = client
        .post(format!("{base}/api/virtualkeys?access_token={master}"))
        .send_json(&serde_json::json!({"keyName": "logged"}))
        .await
        .unwrap();
    let created: serde_json::Value = res.json().await.unwrap();
    let key = created["virtualKey"].as_str().unwrap().to_string();
    for path in [
        format!("/api/virtualkeys?api_key={key}"),
        "/api/virtualkeys?ticket=TICKET-secret-2&token=TOKEN-secret-3".to_string(),
        "/health?ACCESS_TOKEN=upper-SECRET-4".to_string(),
    ] {
        client.get(format!("{base}{path}")).send().await.unwrap();
    }
    client.get(format!("{base}/api/virtualkeys")).bearer_auth(master).send().await.unwrap();
    client.get(format!("{base}/api/virtualkeys")).insert_header(("X-API-Key", key.as_str())).send().await.unwrap();
    actix_rt::time::sleep(Duration::from_millis(200)).await;
    let log = stop_and_read_log(served);
    assert!(log.contains("/api/virtualkeys"), "requests are logged: {log}");
    assert!(log.contains("status=201") || log.contains("status=201 "), "status is logged");
    for secret in [master, key.as_str(), &key[6..], "TICKET-secret-2", "TOKEN-secret-3", "upper-SECRET-4"] {
        assert!(!log.contains(secret), "log leaks {secret}");
    }
}

#[test]
fn keys_system_prints_a_fresh_spaces_key_pair() {
    let dir = TempDir::new();
    let run = || {
        let out = command(&dir).args(["keys", "system"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 2, "{first}");
    for (line, prefix) in lines.iter().zip(["HSAFA_SECRET_KEY=sk_", "HSAFA_PUBLIC_KEY=pk_"]) {
        let hex = line.strip_prefix(prefix).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(hex.len(), 48);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(first, run(), "every pair is fresh");
}
