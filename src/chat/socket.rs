//! The chat WebSocket: `GET /api/agent/ws?ticket=…`. The ticket is consumed before anything else;
//! a bad one still completes the upgrade and then closes with 4001 (so a browser sees the code), an
//! unreachable ticket store with 4003. Each accepted connection is a [`ChatSocket`] actor that numbers
//! its events, validates client frames, and runs at most one turn at a time.

use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_http::ws::Item;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use tokio::sync::mpsc;

use super::orchestrator::{Confirmation, EventSink};
use super::protocol::{parse_client_message, AgentEvent, ClientMessage, ErrorType, ServerEvent};
use super::tickets::{TicketError, TicketGrant};
use super::turn::{self, TurnRequest};
use super::ChatState;
use crate::auth::credentials::query_param;
use crate::auth::jwt::ChatIdentity;
use crate::state::AppState;

/// Close code for a missing, invalid, reused or expired ticket.
pub const CLOSE_INVALID_TICKET: u16 = 4001;
/// Close code when the ticket store cannot be reached; the widget stops reconnecting on it.
pub const CLOSE_TICKET_STORE_DOWN: u16 = 4003;
/// Frames above `max_frame_bytes` times this close the socket instead of getting an error event.
const HARD_LIMIT_FACTOR: usize = 4;

/// `GET /api/agent/ws?ticket=…`
pub async fn connect(
    req: HttpRequest,
    stream: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let chat = state.chat.clone();
    let presented = query_param(req.query_string(), "ticket").unwrap_or_default();
    let grant = chat.tickets.consume(&presented).await;
    drop(presented);
    let hard_limit = chat.settings.max_frame_bytes.saturating_mul(HARD_LIMIT_FACTOR);
    match grant {
        Ok(grant) => {
            tracing::info!(tenant = %grant.tenant_id, user = %grant.user_id, "chat socket opened");
            ws::WsResponseBuilder::new(ChatSocket::new(chat, grant), &req, stream).frame_size(hard_limit).start()
        }
        Err(e) => {
            let reason = match e {
                TicketError::Store(store) => {
                    tracing::error!(error = %store, "ticket store unreachable; refusing a chat socket");
                    ws::CloseReason {
                        code: ws::CloseCode::Other(CLOSE_TICKET_STORE_DOWN),
                        description: Some(super::error::TICKET_STORE_UNAVAILABLE.into()),
                    }
                }
                TicketError::Invalid | TicketError::Random => ws::CloseReason {
                    code: ws::CloseCode::Other(CLOSE_INVALID_TICKET),
                    description: Some("Invalid or expired ticket".into()),
                },
            };
            ws::start(Refused(reason), &req, stream)
        }
    }
}

/// A socket that was not admitted: it only closes, with the reason.
struct Refused(ws::CloseReason);

impl Actor for Refused {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.close(Some(self.0.clone()));
        ctx.stop();
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Refused {
    fn handle(&mut self, _: Result<ws::Message, ws::ProtocolError>, _: &mut Self::Context) {}
}

/// The turn in progress.
struct ActiveTurn {
    id: u64,
    run_id: String,
    task: tokio::task::JoinHandle<()>,
    confirmations: mpsc::UnboundedSender<Confirmation>,
    /// The operation waiting for the user's confirm, if any.
    awaiting: Option<String>,
}

/// A message being received in several frames.
struct Fragments {
    data: Vec<u8>,
    binary: bool,
    too_large: bool,
}

/// One chat connection: its identity, its event numbering and its turn.
pub struct ChatSocket {
    chat: ChatState,
    identity: ChatIdentity,
    /// The conversation the ticket named: used by chats that name none.
    ticket_conversation: Option<String>,
    sequence: u64,
    turns_started: u64,
    turn: Option<ActiveTurn>,
    last_heard: Instant,
    fragments: Option<Fragments>,
}

impl ChatSocket {
    /// A connection acting as the grant's identity.
    pub fn new(chat: ChatState, grant: TicketGrant) -> Self {
        ChatSocket {
            chat,
            identity: grant.identity(),
            ticket_conversation: grant.conversation_id,
            sequence: 0,
            turns_started: 0,
            turn: None,
            last_heard: Instant::now(),
            fragments: None,
        }
    }

    /// Numbers and sends an event.
    fn send(&mut self, event: AgentEvent, ctx: &mut ws::WebsocketContext<Self>) {
        self.sequence += 1;
        let wire = event.into_wire(self.sequence, uuid::Uuid::new_v4().to_string());
        ctx.text(wire.to_text());
    }

    fn error(&mut self, error_type: ErrorType, message: String, ctx: &mut ws::WebsocketContext<Self>) {
        self.send(AgentEvent::Error { error_type, message }, ctx);
    }

    /// Stops the turn in progress, telling the orchestrator. `true` if there was one.
    fn stop_turn(&mut self) -> bool {
        let Some(turn) = self.turn.take() else {
            return false;
        };
        turn.task.abort();
        actix_rt::spawn(self.chat.orchestrator.cancel(turn.run_id));
        true
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        if text.len() > self.chat.settings.max_frame_bytes {
            return self.too_large(ctx);
        }
        match parse_client_message(text) {
            Ok(message) => self.on_message(message, ctx),
            Err(e) => self.error(e.error_type(), e.to_string(), ctx),
        }
    }

    fn too_large(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        let max = self.chat.settings.max_frame_bytes;
        self.error(ErrorType::MessageTooLarge, format!("Message too large: at most {max} bytes"), ctx);
    }

    fn on_message(&mut self, message: ClientMessage, ctx: &mut ws::WebsocketContext<Self>) {
        match message {
            ClientMessage::Ping => ctx.text(ServerEvent::pong().to_text()),
            ClientMessage::Chat { message, conversation_id } => self.on_chat(message, conversation_id, ctx),
            ClientMessage::Confirm { operation_id, confirmed } => {
                let forwarded = match &mut self.turn {
                    Some(turn) if turn.awaiting.as_deref() == Some(operation_id.as_str()) => {
                        turn.awaiting = None;
                        turn.confirmations.send(Confirmation { operation_id, confirmed }).is_ok()
                    }
                    _ => false,
                };
                if !forwarded {
                    self.error(ErrorType::ValidationError, "No operation is waiting for this confirmation".into(), ctx);
                }
            }
            ClientMessage::Cancel => {
                let active = self.stop_turn();
                self.send(
                    AgentEvent::Cancelled { reason: if active { "user" } else { "nothing_running" }.into() },
                    ctx,
                );
            }
        }
    }

    fn on_chat(&mut self, message: String, conversation_id: Option<String>, ctx: &mut ws::WebsocketContext<Self>) {
        if message.trim().is_empty() {
            return self.error(ErrorType::ValidationError, "Message must not be empty".into(), ctx);
        }
        let max = self.chat.settings.max_message_chars;
        if message.chars().count() > max {
            return self.error(ErrorType::ValidationError, format!("Message too long: at most {max} characters"), ctx);
        }
        if self.stop_turn() {
            self.send(AgentEvent::Cancelled { reason: "superseded".into() }, ctx);
        }
        self.turns_started += 1;
        let id = self.turns_started;
        let run_id = format!("run_{}", uuid::Uuid::new_v4().simple());
        let (confirm_tx, confirm_rx) = mpsc::unbounded_channel();
        let addr = ctx.address();
        let sink = EventSink::new(Box::new(move |event, last| addr.do_send(TurnEvent { turn: id, event, last })));
        let request = TurnRequest {
            run_id: run_id.clone(),
            identity: self.identity.clone(),
            conversation_id: conversation_id.or_else(|| self.ticket_conversation.clone()),
            message,
            confirmations: confirm_rx,
        };
        let task = actix_rt::spawn(turn::run(self.chat.clone(), request, sink));
        self.turn = Some(ActiveTurn { id, run_id, task, confirmations: confirm_tx, awaiting: None });
    }

    fn on_fragment(&mut self, item: Item, ctx: &mut ws::WebsocketContext<Self>) {
        let limit = self.chat.settings.max_frame_bytes;
        let (data, first, last) = match item {
            Item::FirstText(b) => (b, Some(false), false),
            Item::FirstBinary(b) => (b, Some(true), false),
            Item::Continue(b) => (b, None, false),
            Item::Last(b) => (b, None, true),
        };
        if let Some(binary) = first {
            self.fragments = Some(Fragments { data: Vec::new(), binary, too_large: false });
        }
        let Some(fragments) = self.fragments.as_mut() else {
            return self.error(ErrorType::ValidationError, "Unexpected continuation frame".into(), ctx);
        };
        if !fragments.too_large {
            if fragments.data.len() + data.len() > limit {
                fragments.too_large = true;
                fragments.data = Vec::new();
            } else {
                fragments.data.extend_from_slice(&data);
            }
        }
        if !last {
            return;
        }
        let Some(done) = self.fragments.take() else {
            return;
        };
        if done.too_large {
            self.too_large(ctx)
        } else if done.binary {
            self.binary_refused(ctx)
        } else {
            match String::from_utf8(done.data) {
                Ok(text) => self.on_text(&text, ctx),
                Err(_) => self.error(ErrorType::InvalidJson, "Message is not valid UTF-8".into(), ctx),
            }
        }
    }

    fn binary_refused(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.error(ErrorType::ValidationError, "Binary frames are not supported; send JSON text".into(), ctx);
    }
}

impl Actor for ChatSocket {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // A graceful shutdown closes the socket with 1001 (going away); the widget reconnects.
        let mut closing = self.chat.closing.subscribe();
        ctx.spawn(
            async move {
                let _ = closing.wait_for(|closing| *closing).await;
            }
            .into_actor(self)
            .map(|_, _, ctx| {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some(crate::server::SHUTDOWN_REASON.into()),
                }));
                ctx.stop();
            }),
        );
        let idle = Duration::from_secs(self.chat.settings.idle_timeout_seconds);
        let tick = (idle / 3).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(tick, move |socket, ctx| {
            let quiet = socket.last_heard.elapsed();
            if quiet > idle {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Normal,
                    description: Some("Idle timeout".into()),
                }));
                ctx.stop();
            } else if quiet >= tick {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop_turn();
        tracing::info!(tenant = %self.identity.tenant_id, user = %self.identity.user_id, "chat socket closed");
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for ChatSocket {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.binary_refused(ctx),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(payload)) => ctx.pong(&payload),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(_)) => {
                ctx.close(Some(ws::CloseCode::Normal.into()));
                ctx.stop();
            }
            Err(e) => {
                // The stream cannot continue past a protocol error (e.g. a frame over the hard limit).
                let code = match e {
                    ws::ProtocolError::Overflow => ws::CloseCode::Size,
                    _ => ws::CloseCode::Protocol,
                };
                tracing::debug!(error = %e, "chat socket protocol error");
                let message = match code {
                    ws::CloseCode::Size => "Frame too large; closing the connection",
                    _ => "WebSocket protocol error; closing the connection",
                };
                self.error(ErrorType::Fatal, message.into(), ctx);
                ctx.close(Some(code.into()));
                ctx.stop();
            }
        }
    }
}

/// An event of a turn, delivered to its socket in the order the turn produced them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TurnEvent {
    pub turn: u64,
    pub event: AgentEvent,
    /// The turn's final event (`done` or `error`).
    pub last: bool,
}

impl Handler<TurnEvent> for ChatSocket {
    type Result = ();

    fn handle(&mut self, msg: TurnEvent, ctx: &mut Self::Context) {
        let Some(turn) = self.turn.as_mut().filter(|t| t.id == msg.turn) else {
            // A cancelled or superseded turn's late event.
            return;
        };
        if let AgentEvent::ConfirmationRequired { operation_id, .. } = &msg.event {
            turn.awaiting = Some(operation_id.clone());
        }
        if msg.last {
            self.turn = None;
        }
        self.send(msg.event, ctx);
    }
}
