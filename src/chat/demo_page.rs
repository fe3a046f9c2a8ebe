//! The chat demo page: the built widget (web/dist, from `npm run build` in web/) served at
//! `/chat-demo/`. The server runs without it; then the page answers 404.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::error::ChatError;
use crate::state::AppState;

/// Sent with every file: the page only talks to its own origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// `GET /chat-demo` and `GET /chat-demo/{path}`.
pub async fn serve(state: web::Data<AppState>, path: Option<web::Path<String>>) -> Result<HttpResponse, ChatError> {
    let web_dir = state.chat.settings.web_dir.clone();
    if web_dir.is_empty() {
        return Err(ChatError::DemoNotBuilt);
    }
    let requested = path.map(|p| p.into_inner()).unwrap_or_default();
    let relative = safe_relative(&requested).ok_or(ChatError::DemoNotBuilt)?;
    let relative = if relative.as_os_str().is_empty() { PathBuf::from("index.html") } else { relative };
    let file = Path::new(&web_dir).join(&relative);
    let content_type = content_type(&relative);
    let body = web::block(move || std::fs::read(file))
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?
        .map_err(|_| ChatError::DemoNotBuilt)?;
    // Vite names assets by content hash: they never change; the page itself always revalidates.
    let cache = if relative.starts_with("assets") { "public, max-age=31536000, immutable" } else { "no-cache" };
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CACHE_CONTROL, cache))
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(body))
}

/// The request path as a relative path inside the folder: no `..`, no hidden names, no roots.
fn safe_relative(requested: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in Path::new(requested).components() {
        match component {
            Component::Normal(name) => {
                let name = name.to_str()?;
                if name.starts_with('.') || name.contains('\\') {
                    return None;
                }
                out.push(name);
            }
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_served() {
        assert_eq!(safe_relative(""), Some(PathBuf::new()));
        assert_eq!(safe_relative("assets/a.js"), Some(PathBuf::from("assets/a.js")));
        assert_eq!(safe_relative("../secret"), None);
        assert_eq!(safe_relative("assets/../../x"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative(".env"), None);
        assert_eq!(content_type(Path::new("index.html")), "text/html; charset=utf-8");
    }
}
