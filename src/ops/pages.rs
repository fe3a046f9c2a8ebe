//! The operator pages, plain files in `ops.pages_dir` (`web/operator/` by default, no build step):
//! `/admin` (live console) and `/test-admin-signalr.html` (admin hub test page), with their scripts under
//! `/operator/`. Only the files named here are served, so no request can reach another file. The pages
//! hold no secret: the operator types the master key, which stays in the page's memory. The server runs
//! without the folder; then these paths answer 404.

use std::path::Path;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::state::AppState;

/// Sent with every page file: the pages only talk to their own origin and run only their own scripts.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/// Request path → file in the pages folder, and its content type.
const FILES: &[(&str, &str, &str)] = &[
    ("/admin", "admin.html", "text/html; charset=utf-8"),
    ("/test-admin-signalr.html", "test-admin-signalr.html", "text/html; charset=utf-8"),
    ("/operator/admin.js", "admin.js", "text/javascript; charset=utf-8"),
    ("/operator/test-admin.js", "test-admin.js", "text/javascript; charset=utf-8"),
    ("/operator/signalr-lite.js", "signalr-lite.js", "text/javascript; charset=utf-8"),
    ("/operator/operator.css", "operator.css", "text/css; charset=utf-8"),
];

/// Registers the pages' routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, _, _) in FILES {
        cfg.route(path, web::get().to(serve));
    }
}

async fn serve(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let dir = state.config.ops.pages_dir.clone();
    let Some((_, name, content_type)) = FILES.iter().find(|(path, _, _)| *path == req.path()) else {
        return HttpResponse::NotFound().finish();
    };
    if dir.is_empty() {
        return HttpResponse::NotFound().finish();
    }
    let file = Path::new(&dir).join(name);
    match web::block(move || std::fs::read(file)).await {
        Ok(Ok(body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .body(body),
        _ => HttpResponse::NotFound().finish(),
    }
}
