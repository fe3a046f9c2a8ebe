//! CORS for browsers: the request's Origin is reflected (never `*`, since SignalR clients send
//! credentials), credentials are allowed, and preflights are answered here.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpResponse};

use crate::state::AppState;

fn allowed(state: &AppState, origin: &str) -> bool {
    let list = &state.config.cors.allowed_origins;
    list.is_empty() || list.iter().any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// The middleware (use with `actix_web::middleware::from_fn`).
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    let origin = origin.filter(|o| req.app_data::<web::Data<AppState>>().is_some_and(|s| allowed(s, o)));
    let Some(origin) = origin else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        let requested = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let mut res = HttpResponse::NoContent();
        res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true"))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PUT, PATCH, DELETE, OPTIONS"))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"));
        if !requested.is_empty() {
            res.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, requested));
        }
        return Ok(req.into_response(res.finish()).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, header::HeaderValue::from_static("true"));
        headers.insert(header::VARY, header::HeaderValue::from_static("Origin"));
    }
    Ok(res.map_into_left_body())
}
