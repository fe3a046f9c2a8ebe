//! The demo page: the built widget is served from `chat.web_dir` at /chat-demo/ with safe headers,
//! nothing outside that folder is reachable, and the server runs without it.

mod chat_support;
mod common;

use chat_support::chat_options;
use common::{TempDir, TestServer};

#[actix_rt::test]
async fn serves_the_built_widget_and_nothing_else() {
    let dir = TempDir::new();
    std::fs::create_dir_all(dir.path.join("assets")).unwrap();
    std::fs::write(dir.path.join("index.html"), "<!doctype html><title>demo</title>").unwrap();
    std::fs::write(dir.path.join("assets/app-1.js"), "console.log(1)").unwrap();
    std::fs::write(dir.path.join(".secret"), "no").unwrap();
    let web_dir = dir.path.to_string_lossy().into_owned();
    let srv = TestServer::start_with(chat_options(false, &[("SWITCHYARD__CHAT__WEB_DIR", &web_dir)])).await;
    let client = srv.client();

    for path in ["/chat-demo", "/chat-demo/", "/chat-demo/index.html"] {
        let mut res = client.get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        assert_eq!(res.headers().get("content-type").unwrap(), "text/html; charset=utf-8");
        let csp = res.headers().get("content-security-policy").unwrap().to_str().unwrap();
        assert!(csp.contains("default-src 'self'"), "{csp}");
        assert_eq!(res.headers().get("cache-control").unwrap(), "no-cache");
        assert!(String::from_utf8_lossy(&res.body().await.unwrap()).contains("demo"));
    }
    let res = client.get(srv.url("/chat-demo/assets/app-1.js")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.headers().get("content-type").unwrap(), "text/javascript; charset=utf-8");
    assert!(res.headers().get("cache-control").unwrap().to_str().unwrap().contains("immutable"));

    for path in ["/chat-demo/.secret", "/chat-demo/%2e%2e/Cargo.toml", "/chat-demo/assets/missing.js"] {
        let mut res = client.get(srv.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 404, "{path}");
        let body = common::json_body(&mut res).await;
        assert!(body["detail"].is_string(), "{body}");
    }
}

#[actix_rt::test]
async fn without_a_built_widget_the_page_is_404_and_the_server_runs() {
    let srv =
        TestServer::start_with(chat_options(false, &[("SWITCHYARD__CHAT__WEB_DIR", "/nonexistent/switchyard-web")]))
            .await;
    let res = srv.client().get(srv.url("/chat-demo/")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    let res = srv.client().get(srv.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}
