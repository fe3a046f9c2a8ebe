//! The Connection actor: one per SignalR connection, whatever its transport. It owns the handshake,
//! decoding, dispatch to the hub, streams in both directions, client results, keep-alive and timeouts,
//! and what it writes: a streaming transport's bounded queue (an [`Outlet`], in `outlet.rs`) or the
//! long-polling queue, and the replay buffer of stateful reconnect (`replay.rs`). Transports only move
//! bytes in ([`Inbound`]) and out (an [`Outbox`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::hub::{find_method, Call, ConnectionUser, Hub, HubContext, HubError, HubReply, MethodKind, RequestInfo};
use super::hub_actor::{HubActor, Unregister};
use super::options::{HubOptions, TransportKind};
use super::outlet::{OutFrame, Outlet, OutletError};
use super::protocol::{
    handshake_response, parse_handshake, select_protocol, unsupported_transfer_format_error, CompletionResult,
    HandshakeParse, HubMessage, MessageDecoder, ProtocolKind, TransferFormat, Value, HANDSHAKE_SUCCESS,
};
use super::replay::Replay;

/// Where outgoing bytes go.
enum Outbox {
    /// Negotiated, transport not attached yet (or a stateful connection waiting for its client).
    Detached { since: Instant },
    /// A WebSocket or SSE stream: a bounded queue drained by the transport's writer.
    Stream(Outlet),
    /// Long polling: payloads wait here for the next poll.
    Poll {
        queue: VecDeque<Bytes>,
        queued_bytes: usize,
        waiting: Option<oneshot::Sender<PollOutcome>>,
        last_poll: Instant,
    },
}

/// What a long poll returns.
#[derive(Debug)]
pub enum PollOutcome {
    /// 200 with these bytes.
    Data(Bytes),
    /// 200, empty: the poll timed out or this is the first poll.
    Empty,
    /// 204: a newer poll took over, or the connection ended.
    Ended,
}

enum Phase {
    AwaitingHandshake(Vec<u8>),
    Open { protocol: ProtocolKind, decoder: MessageDecoder },
    Closed,
}

/// See the module documentation.
pub struct Connection {
    id: Arc<str>,
    hub: Arc<dyn Hub>,
    hub_addr: Addr<HubActor>,
    options: Arc<HubOptions>,
    user: Option<Arc<ConnectionUser>>,
    request: Arc<RequestInfo>,
    transport: Option<TransportKind>,
    outbox: Outbox,
    phase: Phase,
    last_received: Instant,
    last_sent: Instant,
    server_streams: HashMap<String, SpawnHandle>,
    uploads: HashMap<String, mpsc::UnboundedSender<Result<Value, String>>>,
    client_results: HashMap<String, oneshot::Sender<Result<Value, String>>>,
    next_client_invocation: u64,
    replay: Option<Replay>,
    on_closed: Vec<Box<dyn FnOnce() + Send>>,
    /// The hub's path, as metrics label invocations.
    hub_path: Arc<str>,
    /// Messages received from and written to this client, for operators' views.
    messages_in: u64,
    messages_out: u64,
    connected_at: chrono::DateTime<chrono::Utc>,
}

/// How long a closed long-polling connection keeps its last messages for the client's next poll.
const CLOSING_POLL_GRACE: Duration = Duration::from_secs(5);

impl Connection {
    /// A new connection; it registers itself with its hub when started.
    pub fn new(
        id: String,
        hub: Arc<dyn Hub>,
        hub_addr: Addr<HubActor>,
        options: Arc<HubOptions>,
        user: Option<ConnectionUser>,
        request: RequestInfo,
        stateful: bool,
    ) -> Self {
        let now = Instant::now();
        Connection {
            id: id.into(),
            hub,
            hub_addr,
            options,
            user: user.map(Arc::new),
            request: Arc::new(request),
            transport: None,
            outbox: Outbox::Detached { since: now },
            phase: Phase::AwaitingHandshake(Vec::new()),
            last_received: now,
            last_sent: now,
            server_streams: HashMap::new(),
            uploads: HashMap::new(),
            client_results: HashMap::new(),
            next_client_invocation: 0,
            replay: stateful.then(Replay::new),
            on_closed: Vec::new(),
            hub_path: Arc::from(""),
            messages_in: 0,
            messages_out: 0,
            connected_at: chrono::Utc::now(),
        }
    }

    /// Names the hub the connection belongs to (a metrics label).
    pub fn in_hub(mut self, path: &str) -> Self {
        self.hub_path = Arc::from(path);
        self
    }

    /// Runs `f` once when the connection ends (used to leave the principal's group).
    pub fn on_closed(mut self, f: impl FnOnce() + Send + 'static) -> Self {
        self.on_closed.push(Box::new(f));
        self
    }

    fn context(&self, ctx: &Context<Self>) -> HubContext {
        HubContext {
            connection_id: self.id.clone(),
            user: self.user.clone(),
            transport: self.transport.map(TransportKind::name).unwrap_or(""),
            request: self.request.clone(),
            hub: self.hub_addr.clone(),
            connection: ctx.address().recipient(),
            caller: ctx.address().recipient(),
        }
    }

    fn protocol(&self) -> Option<ProtocolKind> {
        match &self.phase {
            Phase::Open { protocol, .. } => Some(*protocol),
            _ => None,
        }
    }

    /// Writes encoded bytes to the transport (or queues them), numbering them for stateful reconnect.
    fn write(&mut self, bytes: Bytes, sequenced: bool, ctx: &mut Context<Self>) {
        if let (Some(replay), true) = (self.replay.as_mut(), sequenced) {
            replay.record(&bytes, self.options.stateful_reconnect_buffer);
        }
        let binary = self.protocol().map(|p| p.transfer_format() == TransferFormat::Binary).unwrap_or(false);
        self.push_raw(bytes, binary, ctx);
    }

    fn push_raw(&mut self, bytes: Bytes, binary: bool, ctx: &mut Context<Self>) {
        self.last_sent = Instant::now();
        self.messages_out += 1;
        crate::ops::metrics::MESSAGES_OUT.inc();
        match &mut self.outbox {
            Outbox::Detached { .. } => {}
            Outbox::Stream(outlet) => {
                let frame = if binary { OutFrame::Binary(bytes) } else { OutFrame::Text(bytes) };
                match outlet.send(frame, self.options.max_outgoing_bytes, self.options.max_outgoing_queue) {
                    Ok(()) => {}
                    Err(OutletError::Full) => {
                        tracing::warn!(connection = %self.id, "slow consumer: outgoing queue full, closing");
                        crate::ops::metrics::SLOW_CONSUMERS.inc();
                        outlet.abort();
                        self.outbox = Outbox::Detached { since: Instant::now() };
                        self.replay = None;
                        self.finish(ctx);
                    }
                    Err(OutletError::Closed) => self.transport_gone(ctx),
                }
            }
            Outbox::Poll { queue, queued_bytes, waiting, .. } => {
                if let Some(poll) = waiting.take() {
                    if let Err(PollOutcome::Data(back)) = poll.send(PollOutcome::Data(bytes)) {
                        *queued_bytes += back.len();
                        queue.push_back(back);
                    }
                } else {
                    *queued_bytes += bytes.len();
                    queue.push_back(bytes);
                    if queue.len() > self.options.max_outgoing_queue || *queued_bytes > self.options.max_outgoing_bytes
                    {
                        tracing::warn!(connection = %self.id, "slow consumer: long-poll queue full, closing");
                        crate::ops::metrics::SLOW_CONSUMERS.inc();
                        self.finish(ctx);
                    }
                }
            }
        }
    }

    fn send_message(&mut self, msg: &HubMessage, ctx: &mut Context<Self>) {
        let Some(protocol) = self.protocol() else {
            return;
        };
        match protocol.encode_to_vec(msg) {
            Ok(bytes) => self.write(Bytes::from(bytes), msg.is_sequenced(), ctx),
            Err(e) => tracing::error!(connection = %self.id, error = %e, "cannot encode message"),
        }
    }

    /// Sends a Close message (when the handshake is done) and ends the connection.
    fn close(&mut self, error: Option<String>, allow_reconnect: bool, ctx: &mut Context<Self>) {
        if self.protocol().is_some() {
            self.send_message(&HubMessage::close(error, allow_reconnect), ctx);
        }
        self.replay = None;
        self.finish(ctx);
    }

    /// Ends the transport and stops the actor.
    fn finish(&mut self, ctx: &mut Context<Self>) {
        self.phase = Phase::Closed;
        match &mut self.outbox {
            Outbox::Stream(outlet) => outlet.control(OutFrame::Close(1000)),
            Outbox::Poll { waiting, queue, .. } => {
                if let Some(poll) = waiting.take() {
                    let _ = poll.send(PollOutcome::Ended);
                } else if !queue.is_empty() {
                    // No poll is open: keep what is queued (the Close above all) for the client's next
                    // poll, which stops the actor; a client that never polls again is dropped soon.
                    ctx.run_later(CLOSING_POLL_GRACE, |_, ctx| ctx.stop());
                    return;
                }
            }
            Outbox::Detached { .. } => {}
        }
        ctx.stop();
    }

    /// The transport went away without a Close: a stateful WebSocket connection waits for its client to
    /// come back; anything else ends.
    fn transport_gone(&mut self, ctx: &mut Context<Self>) {
        let can_wait = self.replay.is_some()
            && self.transport == Some(TransportKind::WebSockets)
            && matches!(self.phase, Phase::Open { .. });
        if can_wait {
            tracing::debug!(connection = %self.id, "transport dropped; waiting for a stateful reconnect");
            self.outbox = Outbox::Detached { since: Instant::now() };
        } else {
            self.phase = Phase::Closed;
            ctx.stop();
        }
    }

    fn on_bytes(&mut self, bytes: &[u8], ctx: &mut Context<Self>) {
        self.last_received = Instant::now();
        let mut rest: Vec<u8> = Vec::new();
        if let Phase::AwaitingHandshake(buf) = &mut self.phase {
            buf.extend_from_slice(bytes);
            match parse_handshake(buf, self.options.max_message_size) {
                Ok(HandshakeParse::Incomplete) => return,
                Ok(HandshakeParse::Complete { request, consumed }) => {
                    rest = buf[consumed..].to_vec();
                    let transport = self.transport.unwrap_or(TransportKind::WebSockets);
                    // Stateful reconnect is a WebSocket feature, and clients that use it say so with
                    // handshake version 2; one that fell back to another transport sends version 1.
                    if transport != TransportKind::WebSockets || request.version < 2 {
                        self.replay = None;
                    }
                    let chosen = select_protocol(&request, &self.options.protocols).and_then(|p| {
                        if transport == TransportKind::ServerSentEvents && p.transfer_format() == TransferFormat::Binary
                        {
                            Err(unsupported_transfer_format_error(p))
                        } else {
                            Ok(p)
                        }
                    });
                    match chosen {
                        Ok(protocol) => {
                            // In the protocol's frame type, as ASP.NET (it sets the active transfer format
                            // before writing the response): a Binary frame for MessagePack.
                            let binary = protocol.transfer_format() == TransferFormat::Binary;
                            self.push_raw(Bytes::from_static(HANDSHAKE_SUCCESS), binary, ctx);
                            self.phase = Phase::Open {
                                protocol,
                                decoder: MessageDecoder::new(protocol, self.options.max_message_size),
                            };
                            self.hub_addr.do_send(super::hub_actor::Handshaken {
                                id: self.id.to_string(),
                                protocol,
                                transport: transport.name(),
                            });
                            let hub = self.hub.clone();
                            let hub_ctx = self.context(ctx);
                            ctx.spawn(hub.on_connected(hub_ctx).into_actor(self).map(|result, act, ctx| {
                                if let Err(e) = result {
                                    let text = match e {
                                        HubError::Hub(m) => m,
                                        other => other.completion_text("OnConnectedAsync", act.options.detailed_errors),
                                    };
                                    act.close(Some(text), false, ctx);
                                }
                            }));
                        }
                        Err(text) => {
                            self.push_raw(Bytes::from(handshake_response(Some(&text))), false, ctx);
                            self.finish(ctx);
                            return;
                        }
                    }
                }
                Err(e) => {
                    let text = e.handshake_error_text(self.options.detailed_errors);
                    self.push_raw(Bytes::from(handshake_response(Some(&text))), false, ctx);
                    self.finish(ctx);
                    return;
                }
            }
        } else {
            rest.extend_from_slice(bytes);
        }
        let Phase::Open { decoder, .. } = &mut self.phase else {
            return;
        };
        decoder.push(&rest);
        loop {
            let Phase::Open { decoder, .. } = &mut self.phase else {
                return;
            };
            match decoder.next_message() {
                Ok(Some(msg)) => self.on_message(msg, ctx),
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(connection = %self.id, error = %e, "protocol error, closing");
                    let text = e.close_error_text(self.options.detailed_errors);
                    self.close(Some(text), false, ctx);
                    return;
                }
            }
        }
    }

    /// Stateful reconnect: whether a sequenced incoming message is new (not a replayed duplicate).
    fn accept_sequenced(&mut self, ctx: &mut Context<Self>) -> bool {
        let Some(replay) = self.replay.as_mut() else {
            return true;
        };
        if !replay.accept_incoming() {
            return false;
        }
        if replay.schedule_ack() {
            ctx.run_later(Duration::from_millis(500), |act, ctx| {
                if let Some(replay) = act.replay.as_mut() {
                    let ack = HubMessage::ack(replay.ack_due());
                    act.send_message(&ack, ctx);
                }
            });
        }
        true
    }

    fn on_message(&mut self, msg: HubMessage, ctx: &mut Context<Self>) {
        self.messages_in += 1;
        crate::ops::metrics::MESSAGES_IN.inc();
        if msg.is_sequenced() && !self.accept_sequenced(ctx) {
            return;
        }
        match msg {
            HubMessage::Invocation { invocation_id, target, arguments, stream_ids, .. } => {
                self.invoke(invocation_id, target, arguments, stream_ids, false, ctx)
            }
            HubMessage::StreamInvocation { invocation_id, target, arguments, stream_ids, .. } => {
                self.invoke(Some(invocation_id), target, arguments, stream_ids, true, ctx)
            }
            HubMessage::StreamItem { invocation_id, item, .. } => {
                if let Some(tx) = self.uploads.get(&invocation_id) {
                    let _ = tx.send(Ok(item));
                }
            }
            HubMessage::Completion { invocation_id, result, .. } => {
                if let Some(tx) = self.uploads.remove(&invocation_id) {
                    if let CompletionResult::Error(e) = result {
                        let _ = tx.send(Err(e));
                    }
                } else if let Some(reply) = self.client_results.remove(&invocation_id) {
                    let _ = reply.send(match result {
                        CompletionResult::Error(e) => Err(e),
                        CompletionResult::Value(v) => Ok(v),
                        CompletionResult::Void => Ok(Value::Null),
                    });
                }
            }
            HubMessage::CancelInvocation { invocation_id, .. } => {
                if let Some(handle) = self.server_streams.remove(&invocation_id) {
                    ctx.cancel_future(handle);
                    self.send_message(&HubMessage::completion_void(invocation_id), ctx);
                }
            }
            HubMessage::Ping => {}
            HubMessage::Close { .. } => {
                self.replay = None;
                self.finish(ctx);
            }
            HubMessage::Ack { sequence_id } => {
                if let Some(replay) = self.replay.as_mut() {
                    replay.ack(sequence_id);
                }
            }
            HubMessage::Sequence { sequence_id } => {
                if let Some(replay) = self.replay.as_mut() {
                    if !replay.resume_incoming(sequence_id) {
                        self.close(
                            Some("Sequence ID greater than amount of messages we've received.".into()),
                            false,
                            ctx,
                        );
                    }
                }
            }
        }
    }

    fn invoke(
        &mut self,
        invocation_id: Option<String>,
        target: String,
        args: Vec<Value>,
        stream_ids: Vec<String>,
        streaming_call: bool,
        ctx: &mut Context<Self>,
    ) {
        crate::ops::metrics::INVOCATIONS.inc();
        let detailed = self.options.detailed_errors;
        let fail = |act: &mut Self, ctx: &mut Context<Self>, text: String| {
            if let Some(id) = &invocation_id {
                act.send_message(&HubMessage::completion_error(id.clone(), text), ctx);
            }
        };
        let hub_path = self.hub_path.clone();
        let count = move |method: &str, ok: bool| {
            let outcome = if ok { "ok" } else { "error" };
            crate::ops::metrics::INVOCATIONS_BY_METHOD.inc([&hub_path, method, outcome]);
        };
        let Some(method) = find_method(self.hub.methods(), &target) else {
            // The client's text is not a label: unknown names are counted together.
            count("(unknown)", false);
            // ASP.NET reports an unknown method as a HubException, so its text is shown either way.
            let text = format!(
                "Failed to invoke '{target}' due to an error on the server. HubException: Method does not exist."
            );
            return fail(self, ctx, text);
        };
        let checks_pass =
            matches!((method.kind, streaming_call), (MethodKind::Streaming, true) | (MethodKind::Unary, false))
                && args.len() == method.params
                && stream_ids.len() == method.upload_streams;
        if !checks_pass {
            count(method.name, false);
        }
        match (method.kind, streaming_call) {
            (MethodKind::Streaming, false) => {
                return fail(
                    self,
                    ctx,
                    format!(
                        "The client attempted to invoke the streaming '{}' method with a non-streaming invocation.",
                        method.name
                    ),
                )
            }
            (MethodKind::Unary, true) => {
                return fail(
                    self,
                    ctx,
                    format!(
                        "The client attempted to invoke the non-streaming '{}' method with a streaming invocation.",
                        method.name
                    ),
                )
            }
            _ => {}
        }
        if args.len() != method.params {
            let e = HubError::Binding(format!(
                "Invocation provides {} argument(s) but target expects {}.",
                args.len(),
                method.params
            ));
            return fail(self, ctx, e.completion_text(method.name, detailed));
        }
        if stream_ids.len() != method.upload_streams {
            let e = HubError::Binding(format!(
                "Client sent {} stream(s), Hub method expects {}.",
                stream_ids.len(),
                method.upload_streams
            ));
            return fail(self, ctx, e.completion_text(method.name, detailed));
        }
        let mut uploads = Vec::with_capacity(stream_ids.len());
        for sid in stream_ids {
            let (tx, rx) = mpsc::unbounded_channel();
            self.uploads.insert(sid, tx);
            uploads.push(rx);
        }
        let call = Call { ctx: self.context(ctx), method: method.name, args, uploads };
        let fut = self.hub.clone().invoke(call);
        let name = method.name;
        let me = ctx.address();
        if streaming_call {
            let Some(id) = invocation_id else { return };
            let stream_id = id.clone();
            let handle = ctx.spawn(
                async move {
                    let result = fut.await;
                    count(name, result.is_ok());
                    match result {
                        Ok(HubReply::Stream(mut items)) => {
                            while let Some(item) = items.next().await {
                                match item {
                                    Ok(value) => me.do_send(Emit(HubMessage::stream_item(id.clone(), value))),
                                    Err(e) => {
                                        me.do_send(Emit(HubMessage::completion_error(
                                            id.clone(),
                                            e.stream_text(detailed),
                                        )));
                                        me.do_send(StreamDone(id));
                                        return;
                                    }
                                }
                            }
                            me.do_send(Emit(HubMessage::completion_void(id.clone())));
                        }
                        Ok(_) => me.do_send(Emit(HubMessage::completion_void(id.clone()))),
                        Err(e) => me
                            .do_send(Emit(HubMessage::completion_error(id.clone(), e.completion_text(name, detailed)))),
                    }
                    me.do_send(StreamDone(id));
                }
                .into_actor(self),
            );
            self.server_streams.insert(stream_id, handle);
        } else {
            ctx.spawn(
                async move {
                    let result = fut.await;
                    count(name, result.is_ok());
                    if result.is_err() {
                        crate::ops::metrics::INVOCATION_ERRORS.inc();
                    }
                    let Some(id) = invocation_id else {
                        if let Err(e) = result {
                            tracing::debug!(method = name, error = %e, "non-blocking invocation failed");
                        }
                        return;
                    };
                    // Through the mailbox, so that messages the method sent to the caller go out first.
                    let msg = match result {
                        Ok(HubReply::Void) => HubMessage::completion_void(id),
                        Ok(HubReply::Value(v)) => HubMessage::completion_result(id, v),
                        Ok(HubReply::Stream(_)) => HubMessage::completion_void(id),
                        Err(e) => HubMessage::completion_error(id, e.completion_text(name, detailed)),
                    };
                    me.do_send(Emit(msg));
                }
                .into_actor(self),
            );
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        match &self.outbox {
            Outbox::Detached { since } => {
                let limit = if matches!(self.phase, Phase::Open { .. }) {
                    self.options.reconnect_window
                } else {
                    self.options.transport_attach_timeout
                };
                if now.duration_since(*since) >= limit {
                    self.replay = None;
                    self.finish(ctx);
                }
                return;
            }
            Outbox::Poll { waiting: None, last_poll, .. }
                if now.duration_since(*last_poll) >= self.options.poll_disconnect_timeout =>
            {
                tracing::debug!(connection = %self.id, "long polling client stopped polling");
                self.finish(ctx);
                return;
            }
            _ => {}
        }
        match self.phase {
            Phase::AwaitingHandshake(_) => {
                if now.duration_since(self.last_received) >= self.options.handshake_timeout {
                    tracing::debug!(connection = %self.id, "no handshake in time, closing");
                    self.finish(ctx);
                }
            }
            Phase::Open { protocol, .. } => {
                let polling = matches!(self.outbox, Outbox::Poll { .. });
                if !polling && now.duration_since(self.last_received) >= self.options.client_timeout {
                    tracing::debug!(connection = %self.id, "client timeout, closing");
                    // As ASP.NET (AbortAllowReconnect): a Close with no error that allows reconnecting, so the
                    // client's onclose gets no error and withAutomaticReconnect reconnects.
                    self.close(None, true, ctx);
                } else if !polling && now.duration_since(self.last_sent) >= self.options.keep_alive {
                    let binary = protocol.transfer_format() == TransferFormat::Binary;
                    self.push_raw(Bytes::from_static(protocol.ping_frame()), binary, ctx);
                }
            }
            Phase::Closed => {}
        }
    }
}

impl Actor for Connection {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.options.max_outgoing_queue.max(16));
        ctx.run_interval(Duration::from_millis(500), |act, ctx| act.tick(ctx));
        crate::ops::metrics::CONNECTIONS_OPEN.inc();
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        crate::ops::metrics::CONNECTIONS_OPEN.dec();
        self.hub_addr.do_send(Unregister { id: self.id.to_string() });
        for (_, tx) in self.uploads.drain() {
            let _ = tx.send(Err("Connection closed".into()));
        }
        self.client_results.clear();
        for f in self.on_closed.drain(..) {
            f();
        }
        if self.protocol().is_some() || matches!(self.phase, Phase::Closed) {
            let fut = self.hub.clone().on_disconnected(self.context(ctx));
            actix::spawn(fut);
        }
    }
}

/// Bytes from the transport.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound(pub Bytes);

impl Handler<Inbound> for Connection {
    type Result = ();
    fn handle(&mut self, msg: Inbound, ctx: &mut Self::Context) {
        if !matches!(self.phase, Phase::Closed) {
            self.on_bytes(&msg.0, ctx);
        }
    }
}

/// The transport closed. `clean` when the client said goodbye (close frame, DELETE).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TransportClosed {
    pub clean: bool,
}

impl Handler<TransportClosed> for Connection {
    type Result = ();
    fn handle(&mut self, msg: TransportClosed, ctx: &mut Self::Context) {
        if msg.clean {
            self.replay = None;
        }
        self.outbox = Outbox::Detached { since: Instant::now() };
        self.transport_gone(ctx);
    }
}

/// Why a transport could not attach.
#[derive(Debug, PartialEq, Eq)]
pub enum AttachError {
    /// Another request already serves this connection (409).
    Conflict,
    /// The connection uses another transport (e.g. a POST to a WebSocket connection: 405).
    WrongTransport,
}

/// A streaming transport (WebSocket or SSE) takes the connection over.
#[derive(Message)]
#[rtype(result = "Result<(), AttachError>")]
pub struct AttachStream {
    pub transport: TransportKind,
    pub tx: Outlet,
    /// The transport's request: what the hub sees as the connection's request from now on (as in
    /// ASP.NET, where `GetHttpContext()` is the transport's request, not negotiate's, so cookies set by
    /// negotiate and the transport URL's query are visible). Ignored on a stateful reconnect.
    pub request: Option<RequestInfo>,
}

impl Handler<AttachStream> for Connection {
    type Result = Result<(), AttachError>;
    fn handle(&mut self, msg: AttachStream, ctx: &mut Self::Context) -> Self::Result {
        if !matches!(self.outbox, Outbox::Detached { .. }) {
            return Err(AttachError::Conflict);
        }
        let reconnecting = matches!(self.phase, Phase::Open { .. });
        if reconnecting && (self.transport != Some(msg.transport) || self.replay.is_none()) {
            return Err(AttachError::Conflict);
        }
        self.transport = Some(msg.transport);
        self.outbox = Outbox::Stream(msg.tx);
        if let (false, Some(request)) = (reconnecting, msg.request) {
            self.request = Arc::new(request);
        }
        self.last_received = Instant::now();
        if reconnecting {
            // Stateful reconnect: tell the client where our replay starts, then replay.
            let (first, frames) = match &self.replay {
                Some(r) => r.pending(),
                None => return Ok(()),
            };
            if let Some(protocol) = self.protocol() {
                if let Ok(seq) = protocol.encode_to_vec(&HubMessage::sequence(first)) {
                    let binary = protocol.transfer_format() == TransferFormat::Binary;
                    self.push_raw(Bytes::from(seq), binary, ctx);
                    for frame in frames {
                        self.push_raw(frame, binary, ctx);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A long poll (or a send) from the long-polling transport; the first one makes it the transport.
#[derive(Message)]
#[rtype(result = "Result<(), AttachError>")]
pub struct Poll {
    pub reply: oneshot::Sender<PollOutcome>,
    /// The poll's request; the first poll's becomes the connection's request (see [`AttachStream`]).
    pub request: Option<RequestInfo>,
}

impl Handler<Poll> for Connection {
    type Result = Result<(), AttachError>;
    fn handle(&mut self, msg: Poll, ctx: &mut Self::Context) -> Self::Result {
        match &mut self.outbox {
            Outbox::Detached { .. } if self.transport.is_none() => {
                // The first poll answers at once, empty: the client then knows the connection is up.
                self.transport = Some(TransportKind::LongPolling);
                if let Some(request) = msg.request {
                    self.request = Arc::new(request);
                }
                self.outbox =
                    Outbox::Poll { queue: VecDeque::new(), queued_bytes: 0, waiting: None, last_poll: Instant::now() };
                let _ = msg.reply.send(PollOutcome::Empty);
                Ok(())
            }
            Outbox::Poll { queue, queued_bytes, waiting, last_poll } => {
                *last_poll = Instant::now();
                if let Some(older) = waiting.take() {
                    let _ = older.send(PollOutcome::Ended);
                }
                if queue.is_empty() {
                    *waiting = Some(msg.reply);
                } else {
                    let mut joined = Vec::with_capacity(*queued_bytes);
                    for chunk in queue.drain(..) {
                        joined.extend_from_slice(&chunk);
                    }
                    *queued_bytes = 0;
                    let _ = msg.reply.send(PollOutcome::Data(Bytes::from(joined)));
                    if matches!(self.phase, Phase::Closed) {
                        // The last messages of a closed connection (see `finish`) are delivered.
                        ctx.stop();
                    }
                }
                Ok(())
            }
            _ => Err(AttachError::WrongTransport),
        }
    }
}

/// A long poll ended on its own (timeout or client gone): the connection is still polled from.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PollFinished;

impl Handler<PollFinished> for Connection {
    type Result = ();
    fn handle(&mut self, _: PollFinished, _: &mut Self::Context) {
        if let Outbox::Poll { last_poll, waiting, .. } = &mut self.outbox {
            *last_poll = Instant::now();
            if waiting.as_ref().is_some_and(|w| w.is_closed()) {
                *waiting = None;
            }
        }
    }
}

/// What operators may see of a live connection. Never a secret: no token, no credential, no query.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    pub connection_id: String,
    pub hub: String,
    /// `None` until a transport attached.
    pub transport: Option<&'static str>,
    pub principal_kind: Option<&'static str>,
    pub principal_id: Option<String>,
    pub remote_address: Option<String>,
    pub connected_since: String,
    pub messages_in: u64,
    pub messages_out: u64,
}

/// Asks a connection to describe itself (see [`ConnectionInfo`]).
#[derive(Message)]
#[rtype(result = "ConnectionInfo")]
pub struct Describe;

impl Handler<Describe> for Connection {
    type Result = MessageResult<Describe>;
    fn handle(&mut self, _: Describe, _: &mut Self::Context) -> Self::Result {
        MessageResult(ConnectionInfo {
            connection_id: self.id.to_string(),
            hub: self.hub_path.to_string(),
            transport: self.transport.map(TransportKind::name),
            principal_kind: self.user.as_ref().map(|u| u.kind),
            principal_id: self.user.as_ref().map(|u| u.id.clone()),
            remote_address: self.request.remote_addr.clone(),
            connected_since: self.connected_at.to_rfc3339(),
            messages_in: self.messages_in,
            messages_out: self.messages_out,
        })
    }
}

/// Which transport serves the connection, to route POSTs and refuse mismatches.
#[derive(Message)]
#[rtype(result = "Option<TransportKind>")]
pub struct GetTransport;

impl Handler<GetTransport> for Connection {
    type Result = Option<TransportKind>;
    fn handle(&mut self, _: GetTransport, _: &mut Self::Context) -> Self::Result {
        self.transport
    }
}

/// An already-encoded message from the HubActor's fan-out.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Deliver {
    pub bytes: Bytes,
    pub sequenced: bool,
}

impl Handler<Deliver> for Connection {
    type Result = ();
    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        if self.protocol().is_some() {
            self.write(msg.bytes, msg.sequenced, ctx);
        }
    }
}

/// A message this connection sends itself (completions, stream items), in mailbox order.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Emit(pub HubMessage);

impl Handler<Emit> for Connection {
    type Result = ();
    fn handle(&mut self, msg: Emit, ctx: &mut Self::Context) {
        self.send_message(&msg.0, ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct StreamDone(String);

impl Handler<StreamDone> for Connection {
    type Result = ();
    fn handle(&mut self, msg: StreamDone, _: &mut Self::Context) {
        self.server_streams.remove(&msg.0);
    }
}

/// Invokes a method on this client and routes its Completion back (client results).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InvokeClient {
    pub target: String,
    pub args: Vec<Value>,
    pub reply: oneshot::Sender<Result<Value, String>>,
}

impl Handler<InvokeClient> for Connection {
    type Result = ();
    fn handle(&mut self, msg: InvokeClient, ctx: &mut Self::Context) {
        if self.protocol().is_none() {
            let _ = msg.reply.send(Err("Connection is not ready".into()));
            return;
        }
        self.next_client_invocation += 1;
        let id = format!("s{}", self.next_client_invocation);
        self.client_results.insert(id.clone(), msg.reply);
        self.send_message(&HubMessage::invocation_with_id(id, msg.target, msg.args), ctx);
    }
}

/// Closes the connection with a Close message.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseConnection {
    pub error: Option<String>,
    pub allow_reconnect: bool,
}

impl Handler<CloseConnection> for Connection {
    type Result = ();
    fn handle(&mut self, msg: CloseConnection, ctx: &mut Self::Context) {
        self.close(msg.error, msg.allow_reconnect, ctx);
    }
}
