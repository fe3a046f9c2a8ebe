//! Per-hub settings: timeouts, limits and which transports and protocols a hub offers.

use std::time::Duration;

use super::protocol::ProtocolKind;

/// The three transports, named as the negotiate response and the clients name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    WebSockets,
    ServerSentEvents,
    LongPolling,
}

impl TransportKind {
    pub const ALL: [TransportKind; 3] =
        [TransportKind::WebSockets, TransportKind::ServerSentEvents, TransportKind::LongPolling];

    /// The name used on the wire and by `GetActiveTransportName`.
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::WebSockets => "WebSockets",
            TransportKind::ServerSentEvents => "ServerSentEvents",
            TransportKind::LongPolling => "LongPolling",
        }
    }

    /// Transfer formats the transport can carry; text first (signalrcore takes the first).
    pub fn transfer_formats(self) -> &'static [&'static str] {
        match self {
            TransportKind::ServerSentEvents => &["Text"],
            _ => &["Text", "Binary"],
        }
    }
}

/// How a hub behaves. Defaults follow ASP.NET Core SignalR's.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub transports: Vec<TransportKind>,
    pub protocols: Vec<ProtocolKind>,
    /// Ping after this much server silence.
    pub keep_alive: Duration,
    /// Close after this long without anything from the client (not on long polling).
    pub client_timeout: Duration,
    pub handshake_timeout: Duration,
    /// Largest incoming message.
    pub max_message_size: usize,
    /// Outgoing frames queued for one connection before it counts as a slow consumer and is closed.
    pub max_outgoing_queue: usize,
    /// Outgoing bytes queued for one connection before it counts as a slow consumer and is closed.
    pub max_outgoing_bytes: usize,
    /// How long a long poll is held open when there is nothing to send.
    pub poll_timeout: Duration,
    /// A long-polling connection with no poll for this long is gone.
    pub poll_disconnect_timeout: Duration,
    /// A negotiated connection whose transport never arrives is dropped after this.
    pub transport_attach_timeout: Duration,
    /// Exception details in error texts (never in production).
    pub detailed_errors: bool,
    /// Allow stateful reconnect when a client asks for it.
    pub allow_stateful_reconnect: bool,
    /// Bytes of unacknowledged messages kept for a stateful reconnect.
    pub stateful_reconnect_buffer: usize,
    /// How long a dropped stateful connection waits for its client to come back.
    pub reconnect_window: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            transports: TransportKind::ALL.to_vec(),
            protocols: ProtocolKind::ALL.to_vec(),
            keep_alive: Duration::from_secs(15),
            client_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(15),
            max_message_size: 32 * 1024,
            max_outgoing_queue: 65_536,
            max_outgoing_bytes: 4 * 1024 * 1024,
            poll_timeout: Duration::from_secs(90),
            poll_disconnect_timeout: Duration::from_secs(15),
            transport_attach_timeout: Duration::from_secs(15),
            detailed_errors: false,
            allow_stateful_reconnect: true,
            stateful_reconnect_buffer: 100_000,
            reconnect_window: Duration::from_secs(30),
        }
    }
}
