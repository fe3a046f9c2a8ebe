//! The conformance profile's HTTP side, as the official TypeScript client's functional tests expect it:
//! `/authorizedhub` behind a JWT, `GET /generateJwtToken`, `GET /clientresult/{connectionId}`, and cookies
//! set on negotiate. Only mounted with `signalr.conformance = true`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::cookie::{time::OffsetDateTime, Cookie};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;

use crate::auth::credentials;
use crate::auth::jwt::{JwtSettings, JwtVerifier};
use crate::signalr::endpoint::{AuthRejection, Authenticator};
use crate::signalr::hub_actor::FindConnection;
use crate::signalr::{ConnectionUser, HubEndpoint};

/// The signing secret and verifier of the test JWTs; a fresh secret per process.
#[derive(Clone)]
pub struct ConformanceJwt {
    secret: Arc<str>,
    verifier: JwtVerifier,
}

impl ConformanceJwt {
    pub fn new() -> Option<ConformanceJwt> {
        let secret = crate::auth::secrets::random_urlsafe(48).ok()?;
        let settings = JwtSettings { secret: secret.clone(), ..JwtSettings::default() };
        let verifier = JwtVerifier::from_settings(&settings).ok().flatten()?;
        Some(ConformanceJwt { secret: secret.into(), verifier })
    }

    fn issue(&self) -> Option<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({ "sub": "testuser", "name": "testuser", "iat": now, "exp": now + 3600,
                                         "iss": "SignalRTestServer", "aud": "SignalRTests" });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.secret.as_bytes()),
        )
        .ok()
    }
}

impl Authenticator for ConformanceJwt {
    fn authenticate(
        &self,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Option<ConnectionUser>, AuthRejection>> {
        let token =
            credentials::bearer(req.headers()).or_else(|| credentials::query_param(req.query_string(), "access_token"));
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let Some(token) = token else { return Ok(None) };
            let claims = verifier.verify(&token).await.map_err(|_| AuthRejection::Unauthorized)?;
            let sub = claims.get_str("sub").ok_or(AuthRejection::Unauthorized)?;
            let string_claims: HashMap<String, String> =
                claims.raw.keys().filter_map(|k| claims.get_str(k).map(|v| (k.clone(), v))).collect();
            Ok(Some(ConnectionUser {
                kind: "jwt",
                id: sub.clone(),
                name: sub,
                claims: string_claims,
                max_connections: None,
            }))
        })
    }

    fn required(&self) -> bool {
        true
    }

    fn credential(&self, req: &HttpRequest) -> Option<String> {
        credentials::bearer(req.headers()).or_else(|| credentials::query_param(req.query_string(), "access_token"))
    }
}

/// Registers `/generateJwtToken` and `/clientresult/{connectionId}` (against `test_hub`).
pub fn configure(cfg: &mut web::ServiceConfig, jwt: &ConformanceJwt, test_hub: &HubEndpoint) {
    let jwt = web::Data::new(jwt.clone());
    let hub = web::Data::new(test_hub.clone());
    cfg.service(web::resource("/generateJwtToken").app_data(jwt).route(web::get().to(generate_token)))
        .service(web::resource("/clientresult/{connectionId}").app_data(hub).route(web::get().to(client_result)));
}

async fn generate_token(jwt: web::Data<ConformanceJwt>) -> HttpResponse {
    match jwt.issue() {
        Some(token) => HttpResponse::Ok().content_type("text/plain").body(token),
        None => HttpResponse::InternalServerError().finish(),
    }
}

async fn client_result(path: web::Path<String>, hub: web::Data<HubEndpoint>) -> HttpResponse {
    let Ok(Some(conn)) = hub.addr.send(FindConnection { id: path.into_inner() }).await else {
        return HttpResponse::NotFound().body("No Connection with that ID");
    };
    let (reply, result) = tokio::sync::oneshot::channel();
    conn.do_send(crate::signalr::connection::InvokeClient { target: "Result".into(), args: vec![], reply });
    match tokio::time::timeout(Duration::from_secs(30), result).await {
        Ok(Ok(Ok(crate::signalr::protocol::Value::String(s)))) => HttpResponse::Ok().body(s),
        Ok(Ok(Ok(value))) => HttpResponse::Ok().body(value.to_string()),
        Ok(Ok(Err(error))) => HttpResponse::Ok().body(error),
        _ => HttpResponse::Ok().body("Client did not answer"),
    }
}

/// Sets the cookies ASP.NET's functional test server sets on every negotiate.
pub async fn negotiate_cookies(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let is_negotiate = req.path().ends_with("/negotiate");
    let mut res = next.call(req).await?;
    if is_negotiate {
        let expired = Cookie::build("expiredCookie", "doesntmatter")
            .path("/")
            .expires(OffsetDateTime::now_utc() - actix_web::cookie::time::Duration::hours(1))
            .finish();
        for cookie in [
            Cookie::build("testCookie", "testValue").path("/").finish(),
            Cookie::build("testCookie2", "testValue2").path("/").finish(),
            expired,
        ] {
            let _ = res.response_mut().add_cookie(&cookie);
        }
    }
    Ok(res)
}
