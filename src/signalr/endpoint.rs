//! A hub mapped at a path: negotiate, and the three transports (WebSockets, Server-Sent Events, long
//! polling) with the status codes the official clients expect. This is ASP.NET's `Http.Connections`
//! layer; it moves bytes between HTTP and a [`Connection`] actor.

use std::sync::Arc;

use actix::prelude::*;
use actix_codec::{Decoder, Encoder};
use actix_http::ws::{Codec, Frame, Item, Message as WsMessage};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::oneshot;

use super::connection::{
    AttachError, AttachStream, Connection, GetTransport, Inbound, Poll, PollFinished, PollOutcome, TransportClosed,
};
use super::hub::{ConnectionUser, Hub, RequestInfo};
use super::hub_actor::{HubActor, Lookup, Register};
use super::options::{HubOptions, TransportKind};
use super::outlet::{outlet, OutFrame};
use crate::auth::credentials;

/// Why a request was refused by a hub's authenticator.
#[derive(Debug, Clone)]
pub enum AuthRejection {
    /// 401 with an empty body (the clients read only the status).
    Unauthorized,
    /// 403.
    Forbidden,
    /// 403 with a reason the negotiate response carries as `error` (e.g. a connection cap).
    Refused(String),
}

/// Decides who a request is. Hubs that need a principal refuse requests without one.
pub trait Authenticator: Send + Sync + 'static {
    /// `Ok(None)`: anonymous (allowed only on hubs that do not require a principal).
    fn authenticate(&self, req: &HttpRequest)
        -> LocalBoxFuture<'static, Result<Option<ConnectionUser>, AuthRejection>>;
    /// Whether this hub needs a principal.
    fn required(&self) -> bool;

    /// The raw credential a request presents, if this authenticator reads one. A connection remembers the
    /// hash of the one it negotiated with: later requests presenting the same credential reach it without
    /// being judged again, so a key that was just disabled still receives the Close that says why
    /// (its connections are ended by the principal's group, not by refusing their polls).
    fn credential(&self, _req: &HttpRequest) -> Option<String> {
        None
    }
}

/// An authenticator for open hubs.
pub struct Anonymous;

impl Authenticator for Anonymous {
    fn authenticate(&self, _: &HttpRequest) -> LocalBoxFuture<'static, Result<Option<ConnectionUser>, AuthRejection>> {
        Box::pin(async { Ok(None) })
    }
    fn required(&self) -> bool {
        false
    }
}

/// A hub served at a path.
#[derive(Clone)]
pub struct HubEndpoint {
    pub path: String,
    pub hub: Arc<dyn Hub>,
    pub addr: Addr<HubActor>,
    pub options: Arc<HubOptions>,
    pub auth: Arc<dyn Authenticator>,
    /// Per-principal connection groups, shared by every hub.
    pub groups: Addr<crate::groups::ConnectionGroups>,
    /// Set when the server shuts down: new connections are refused with 503 (clients retry elsewhere
    /// or later) while the existing ones are told to reconnect.
    draining: Arc<std::sync::atomic::AtomicBool>,
}

impl HubEndpoint {
    /// Starts the hub's actor (on the current arbiter) and returns the endpoint to mount.
    pub fn new(
        path: &str,
        hub: Arc<dyn Hub>,
        options: HubOptions,
        auth: Arc<dyn Authenticator>,
        groups: Addr<crate::groups::ConnectionGroups>,
    ) -> HubEndpoint {
        let addr = HubActor::new(path).start();
        HubEndpoint {
            path: path.to_string(),
            hub,
            addr,
            options: Arc::new(options),
            auth,
            groups,
            draining: Arc::default(),
        }
    }

    /// Refuses new connections from now on (for a graceful shutdown).
    pub fn drain(&self) {
        self.draining.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Registers the routes: `{path}/negotiate`, and `{path}` for the transports.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let data = web::Data::new(self.clone());
        cfg.service(
            web::resource(format!("{}/negotiate", self.path)).app_data(data.clone()).route(web::post().to(negotiate)),
        )
        .service(
            web::resource(self.path.clone())
                .app_data(data)
                .app_data(web::PayloadConfig::new(self.options.max_message_size.saturating_mul(4).max(64 * 1024)))
                .route(web::get().to(connect))
                .route(web::post().to(send))
                .route(web::delete().to(delete)),
        );
    }
}

fn random_id() -> String {
    crate::auth::secrets::random_urlsafe(16).unwrap_or_else(|_| uuid::Uuid::new_v4().simple().to_string())
}

fn query(req: &HttpRequest, name: &str) -> Option<String> {
    credentials::query_param(req.query_string(), name)
}

fn request_info(req: &HttpRequest) -> RequestInfo {
    let headers = req
        .headers()
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION && *name != header::COOKIE)
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_string(), v.to_string())))
        .collect();
    let cookies = req
        .cookies()
        .map(|c| c.iter().map(|c| (c.name().to_string(), c.value().to_string())).collect())
        .unwrap_or_default();
    let query = credentials::url_decoded_pairs(req.query_string())
        .into_iter()
        .filter(|(k, _)| !crate::ops::request_log::SECRET_QUERY_PARAMS.iter().any(|s| s.eq_ignore_ascii_case(k)))
        .collect();
    RequestInfo { headers, cookies, query, remote_addr: req.peer_addr().map(|a| a.ip().to_string()) }
}

fn rejection(r: &AuthRejection) -> HttpResponse {
    match r {
        AuthRejection::Unauthorized => HttpResponse::Unauthorized().finish(),
        AuthRejection::Forbidden | AuthRejection::Refused(_) => HttpResponse::Forbidden().finish(),
    }
}

/// Authenticates a request; `Err` is the response to send.
async fn authenticate(ep: &HubEndpoint, req: &HttpRequest) -> Result<Option<ConnectionUser>, HttpResponse> {
    match ep.auth.authenticate(req).await {
        Ok(None) if ep.auth.required() => {
            crate::ops::metrics::AUTH_FAILURES.inc();
            crate::ops::metrics::AUTH_FAILURES_BY_REASON.inc(["missing"]);
            Err(HttpResponse::Unauthorized().finish())
        }
        Ok(user) => Ok(user),
        Err(r) => {
            crate::ops::metrics::AUTH_FAILURES.inc();
            let reason = match r {
                AuthRejection::Unauthorized => "invalid",
                AuthRejection::Forbidden | AuthRejection::Refused(_) => "forbidden",
            };
            crate::ops::metrics::AUTH_FAILURES_BY_REASON.inc([reason]);
            Err(rejection(&r))
        }
    }
}

/// Starts a connection actor and registers it with the hub before anyone can address it.
async fn create_connection(
    ep: &HubEndpoint,
    req: &HttpRequest,
    user: Option<ConnectionUser>,
    stateful: bool,
    negotiate_version: u32,
) -> Result<(String, String, Addr<Connection>), String> {
    use crate::groups::{Join, Leave};
    let id = random_id();
    // Version 0 clients address their connection by its id, so there the token is the id.
    let token = if negotiate_version >= 1 { random_id() } else { id.clone() };
    let principal = user.as_ref().map(|u| (u.principal_key(), u.max_connections));
    let mut conn = Connection::new(
        id.clone(),
        ep.hub.clone(),
        ep.addr.clone(),
        ep.options.clone(),
        user,
        request_info(req),
        stateful,
    )
    .in_hub(&ep.path);
    if let Some((key, _)) = &principal {
        let (groups, key, connection_id) = (ep.groups.clone(), key.clone(), id.clone());
        conn = conn.on_closed(move || groups.do_send(Leave { key, connection_id }));
    }
    let addr = conn.start();
    if let Some((key, cap)) = &principal {
        let join = Join {
            key: key.clone(),
            connection_id: id.clone(),
            hub: ep.path.clone(),
            closer: addr.clone().recipient(),
            cap: *cap,
        };
        let refusal = match ep.groups.send(join).await {
            Ok(Ok(_)) => None,
            Ok(Err(cap)) => {
                crate::ops::metrics::CONNECTION_CAP_REFUSALS.inc();
                Some(cap.to_string())
            }
            Err(_) => Some("Connection groups unavailable".to_string()),
        };
        if let Some(reason) = refusal {
            addr.do_send(super::connection::CloseConnection { error: None, allow_reconnect: false });
            return Err(reason);
        }
    }
    let user = principal.map(|(k, _)| k);
    let _ = ep
        .addr
        .send(Register {
            id: id.clone(),
            token: token.clone(),
            addr: addr.clone(),
            transport: "",
            user,
            credential: ep.auth.credential(req).map(|c| crate::auth::secrets::sha256_hex(&c)),
        })
        .await;
    Ok((id, token, addr))
}

fn shutting_down() -> HttpResponse {
    HttpResponse::ServiceUnavailable().insert_header((header::RETRY_AFTER, "1")).finish()
}

async fn negotiate(req: HttpRequest, ep: web::Data<HubEndpoint>) -> HttpResponse {
    if ep.is_draining() {
        return shutting_down();
    }
    let version: u32 = query(&req, "negotiateVersion").and_then(|v| v.parse().ok()).unwrap_or(0).min(1);
    let user = match authenticate(&ep, &req).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let stateful = ep.options.allow_stateful_reconnect
        && query(&req, "useStatefulReconnect").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let (id, token, _) = match create_connection(&ep, &req, user, stateful, version).await {
        Ok(created) => created,
        // The negotiate `error` field is how SignalR clients learn why they may not connect.
        Err(reason) => {
            return HttpResponse::Ok().content_type("application/json").body(json!({ "error": reason }).to_string())
        }
    };
    let transports: Vec<_> = ep
        .options
        .transports
        .iter()
        .map(|t| json!({ "transport": t.name(), "transferFormats": t.transfer_formats() }))
        .collect();
    let mut body = json!({
        "negotiateVersion": version,
        "connectionId": id,
        "availableTransports": transports,
    });
    if version >= 1 {
        body["connectionToken"] = json!(token);
    }
    if stateful {
        body["useStatefulReconnect"] = json!(true);
    }
    HttpResponse::Ok().content_type("application/json").body(body.to_string())
}

/// Finds the connection a transport request names, checking that the same principal is asking.
async fn find_connection(ep: &HubEndpoint, req: &HttpRequest, token: &str) -> Result<Addr<Connection>, HttpResponse> {
    let found = ep.addr.send(Lookup { token: token.to_string() }).await.ok().flatten();
    let Some((addr, bound_user, bound_credential)) = found else {
        return Err(HttpResponse::NotFound().content_type("text/plain").body("No Connection with that ID"));
    };
    let presented = ep.auth.credential(req).map(|c| crate::auth::secrets::sha256_hex(&c));
    let same_credential = bound_credential
        .is_some_and(|bound| presented.is_some_and(|p| crate::auth::secrets::constant_time_eq(&bound, &p)));
    if ep.auth.required() && !same_credential {
        let user = authenticate(ep, req).await?;
        if user.map(|u| u.principal_key()) != bound_user {
            return Err(HttpResponse::Forbidden().finish());
        }
    }
    Ok(addr)
}

fn wants_websocket(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn wants_sse(req: &HttpRequest) -> bool {
    req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"))
}

async fn connect(req: HttpRequest, payload: web::Payload, ep: web::Data<HubEndpoint>) -> HttpResponse {
    let token = query(&req, "id");
    if wants_websocket(&req) {
        if !ep.options.transports.contains(&TransportKind::WebSockets) {
            return HttpResponse::NotFound().body("WebSockets transport is not enabled");
        }
        let addr = match token {
            Some(token) => match find_connection(&ep, &req, &token).await {
                Ok(addr) => addr,
                Err(response) => return response,
            },
            None if ep.is_draining() => return shutting_down(),
            None => {
                // skipNegotiation: the connection is made on the spot, after the same auth check.
                let user = match authenticate(&ep, &req).await {
                    Ok(user) => user,
                    Err(response) => return response,
                };
                match create_connection(&ep, &req, user, false, 1).await {
                    Ok((_, _, addr)) => addr,
                    Err(reason) => return HttpResponse::Forbidden().body(reason),
                }
            }
        };
        return websocket(req, payload, ep, addr).await;
    }
    let Some(token) = token else {
        return HttpResponse::BadRequest().body("Connection ID required");
    };
    let addr = match find_connection(&ep, &req, &token).await {
        Ok(addr) => addr,
        Err(response) => return response,
    };
    if wants_sse(&req) {
        if !ep.options.transports.contains(&TransportKind::ServerSentEvents) {
            return HttpResponse::NotFound().finish();
        }
        return server_sent_events(addr, request_info(&req)).await;
    }
    if !ep.options.transports.contains(&TransportKind::LongPolling) {
        return HttpResponse::NotFound().finish();
    }
    long_poll(ep, addr, request_info(&req)).await
}

async fn websocket(
    req: HttpRequest,
    mut payload: web::Payload,
    ep: web::Data<HubEndpoint>,
    addr: Addr<Connection>,
) -> HttpResponse {
    let mut handshake = match actix_web_actors::ws::handshake(&req) {
        Ok(builder) => builder,
        Err(e) => return HttpResponse::BadRequest().body(e.to_string()),
    };
    let (tx, rx) = outlet();
    let request = Some(request_info(&req));
    match addr.send(AttachStream { transport: TransportKind::WebSockets, tx: tx.clone(), request }).await {
        Ok(Ok(())) => {}
        Ok(Err(AttachError::Conflict)) => return HttpResponse::Conflict().body("Connection already has a transport"),
        Ok(Err(AttachError::WrongTransport)) => {
            return HttpResponse::BadRequest().body("Cannot change transports mid-connection")
        }
        Err(_) => return HttpResponse::NotFound().body("No Connection with that ID"),
    }

    // Reader: frames in, bytes to the connection; pings answered through the writer's queue.
    let max_frame = ep.options.max_message_size.saturating_mul(2).max(64 * 1024);
    let reader_addr = addr.clone();
    actix_web::rt::spawn(async move {
        let mut codec = Codec::new().max_size(max_frame);
        let mut buf = BytesMut::new();
        let mut partial: Option<BytesMut> = None;
        let mut clean = false;
        'read: while let Some(chunk) = payload.next().await {
            let Ok(chunk) = chunk else { break };
            buf.extend_from_slice(&chunk);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(frame)) => match frame {
                        Frame::Text(b) | Frame::Binary(b) => reader_addr.do_send(Inbound(b)),
                        Frame::Continuation(item) => match item {
                            Item::FirstText(b) | Item::FirstBinary(b) => partial = Some(b.as_ref().into()),
                            Item::Continue(b) => {
                                if let Some(p) = partial.as_mut() {
                                    p.extend_from_slice(&b);
                                    if p.len() > max_frame {
                                        break 'read;
                                    }
                                }
                            }
                            Item::Last(b) => {
                                if let Some(mut p) = partial.take() {
                                    p.extend_from_slice(&b);
                                    reader_addr.do_send(Inbound(p.freeze()));
                                }
                            }
                        },
                        Frame::Ping(b) => {
                            tx.control(OutFrame::Pong(b));
                        }
                        Frame::Pong(_) => {}
                        Frame::Close(_) => {
                            clean = true;
                            tx.control(OutFrame::Close(1000));
                            break 'read;
                        }
                    },
                    Ok(None) => break,
                    Err(_) => {
                        tx.control(OutFrame::Close(1009));
                        break 'read;
                    }
                }
            }
        }
        reader_addr.do_send(TransportClosed { clean });
    });

    // Writer: the response body is the stream of encoded frames from the connection's bounded queue.
    let body = futures_util::stream::unfold((rx, Codec::new(), false), |(mut rx, mut codec, done)| async move {
        if done {
            return None;
        }
        let (msg, last) = match rx.next().await? {
            OutFrame::Text(b) => (WsMessage::Text(bytestring::ByteString::try_from(b).unwrap_or_default()), false),
            OutFrame::Binary(b) => (WsMessage::Binary(b), false),
            OutFrame::Pong(b) => (WsMessage::Pong(b), false),
            OutFrame::Close(code) => (WsMessage::Close(Some(actix_http::ws::CloseCode::from(code).into())), true),
        };
        let mut out = BytesMut::new();
        codec.encode(msg, &mut out).ok()?;
        Some((Ok::<_, actix_web::Error>(out.freeze()), (rx, codec, last)))
    });
    handshake.streaming(body)
}

/// Tells the connection when an SSE response stream is dropped (the client went away).
struct SseGuard(Addr<Connection>);

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.do_send(TransportClosed { clean: false });
    }
}

async fn server_sent_events(addr: Addr<Connection>, request: RequestInfo) -> HttpResponse {
    let (tx, rx) = outlet();
    match addr.send(AttachStream { transport: TransportKind::ServerSentEvents, tx, request: Some(request) }).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return HttpResponse::Conflict().finish(),
        Err(_) => return HttpResponse::NotFound().body("No Connection with that ID"),
    }
    let guard = SseGuard(addr);
    let opening = futures_util::stream::once(async { Ok::<_, actix_web::Error>(Bytes::from_static(b":\r\n")) });
    let events = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        match rx.next().await? {
            OutFrame::Text(b) | OutFrame::Binary(b) => {
                let mut out = Vec::with_capacity(b.len() + 16);
                for line in b.split(|c| *c == b'\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                Some((Ok(Bytes::from(out)), (rx, guard)))
            }
            OutFrame::Pong(_) => Some((Ok(Bytes::new()), (rx, guard))),
            OutFrame::Close(_) => None,
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(opening.chain(events))
}

async fn long_poll(ep: web::Data<HubEndpoint>, addr: Addr<Connection>, request: RequestInfo) -> HttpResponse {
    let (reply, outcome) = oneshot::channel();
    match addr.send(Poll { reply, request: Some(request) }).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return HttpResponse::BadRequest().body("Cannot change transports mid-connection"),
        Err(_) => return HttpResponse::NoContent().finish(),
    }
    match tokio::time::timeout(ep.options.poll_timeout, outcome).await {
        Ok(Ok(PollOutcome::Data(bytes))) => HttpResponse::Ok().content_type("application/octet-stream").body(bytes),
        Ok(Ok(PollOutcome::Empty)) => HttpResponse::Ok().content_type("application/octet-stream").finish(),
        Ok(Ok(PollOutcome::Ended)) | Ok(Err(_)) => HttpResponse::NoContent().finish(),
        Err(_) => {
            addr.do_send(PollFinished);
            HttpResponse::Ok().content_type("application/octet-stream").finish()
        }
    }
}

async fn send(req: HttpRequest, body: web::Bytes, ep: web::Data<HubEndpoint>) -> HttpResponse {
    let Some(token) = query(&req, "id") else {
        return HttpResponse::BadRequest().body("Connection ID required");
    };
    let addr = match find_connection(&ep, &req, &token).await {
        Ok(addr) => addr,
        Err(response) => return response,
    };
    match addr.send(GetTransport).await {
        Ok(Some(TransportKind::WebSockets)) => {
            return HttpResponse::MethodNotAllowed().body("POST requests are not allowed for WebSocket connections.")
        }
        Ok(_) => {}
        Err(_) => return HttpResponse::NotFound().body("No Connection with that ID"),
    }
    addr.do_send(Inbound(body));
    HttpResponse::Ok().finish()
}

async fn delete(req: HttpRequest, ep: web::Data<HubEndpoint>) -> HttpResponse {
    let Some(token) = query(&req, "id") else {
        return HttpResponse::BadRequest().body("Connection ID required");
    };
    let addr = match find_connection(&ep, &req, &token).await {
        Ok(addr) => addr,
        Err(response) => return response,
    };
    match addr.send(GetTransport).await {
        Ok(Some(TransportKind::LongPolling)) => {
            addr.do_send(TransportClosed { clean: true });
            HttpResponse::Accepted().finish()
        }
        // The connection is ending (e.g. the client's Close message arrived just before): it is gone.
        Err(_) => HttpResponse::NotFound().body("No Connection with that ID"),
        _ => HttpResponse::BadRequest().body("Cannot terminate this connection using the DELETE endpoint."),
    }
}
