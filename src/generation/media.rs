//! Pictures for the simulated provider's results, served by Switchyard itself: a small SVG drawn from
//! the task id, so every result is distinct and needs no storage.

use actix_web::{web, HttpResponse};

/// Registers `GET /media/{name}.svg`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/media/{id}.svg", web::get().to(picture));
}

/// The URL path of a task's picture.
pub fn path_for(task_id: &str) -> String {
    format!("/media/{task_id}.svg")
}

async fn picture(id: web::Path<String>) -> HttpResponse {
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return HttpResponse::NotFound().finish();
    }
    let digest = crate::auth::secrets::sha256_hex(&id);
    let color = |i: usize| &digest[i..i + 6];
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"256\" height=\"256\" viewBox=\"0 0 256 256\">\
         <rect width=\"256\" height=\"256\" fill=\"#{}\"/>\
         <circle cx=\"128\" cy=\"128\" r=\"80\" fill=\"#{}\"/>\
         <rect x=\"64\" y=\"176\" width=\"128\" height=\"32\" fill=\"#{}\"/>\
         <text x=\"128\" y=\"240\" font-size=\"12\" text-anchor=\"middle\" fill=\"#fff\">switchyard {}</text></svg>",
        color(0),
        color(6),
        color(12),
        &id[..8]
    );
    HttpResponse::Ok().content_type("image/svg+xml").insert_header(("Cache-Control", "public, max-age=86400")).body(svg)
}
