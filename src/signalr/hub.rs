//! The `Hub` trait a hub file implements, and what its methods receive: typed arguments decoded from
//! either protocol, upload streams, and a [`HubContext`] to reach clients.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::LocalBoxStream;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;

use super::hub_actor::{HubActor, Outgoing, Target};
use super::protocol::Value;

/// A hub method's failure. `Hub` errors reach the client verbatim (ASP.NET's `HubException`); anything
/// else becomes a generic text unless detailed errors are on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// Meant for the client: its text is sent as is.
    #[error("{0}")]
    Hub(String),
    /// The arguments do not fit the method.
    #[error("{0}")]
    Binding(String),
    /// Anything else; `exception` names the kind for detailed errors (e.g. `InvalidOperationException`).
    #[error("{message}")]
    Internal { exception: &'static str, message: String },
}

impl HubError {
    /// A client-facing error.
    pub fn hub(message: impl Into<String>) -> Self {
        HubError::Hub(message.into())
    }

    /// An internal failure whose detail is shown only with detailed errors.
    pub fn internal(exception: &'static str, message: impl Into<String>) -> Self {
        HubError::Internal { exception, message: message.into() }
    }

    /// The Completion error text, built as ASP.NET builds it for a failed invocation of `method`.
    pub fn completion_text(&self, method: &str, detailed: bool) -> String {
        match self {
            HubError::Hub(message) => {
                format!("An unexpected error occurred invoking '{method}' on the server. HubException: {message}")
            }
            HubError::Binding(message) if detailed => {
                format!("Failed to invoke '{method}' due to an error on the server. InvalidDataException: {message}")
            }
            HubError::Binding(_) => {
                format!("Failed to invoke '{method}' due to an error on the server.")
            }
            HubError::Internal { exception, message } if detailed => {
                format!("An unexpected error occurred invoking '{method}' on the server. {exception}: {message}")
            }
            HubError::Internal { .. } => {
                format!("An unexpected error occurred invoking '{method}' on the server.")
            }
        }
    }

    /// The Completion error text for a failed server-to-client stream.
    pub fn stream_text(&self, detailed: bool) -> String {
        match self {
            HubError::Hub(message) => {
                format!("An error occurred on the server while streaming results. HubException: {message}")
            }
            HubError::Internal { exception, message } if detailed => {
                format!("An error occurred on the server while streaming results. {exception}: {message}")
            }
            HubError::Binding(message) if detailed => {
                format!("An error occurred on the server while streaming results. InvalidDataException: {message}")
            }
            _ => "An error occurred on the server while streaming results.".to_string(),
        }
    }
}

/// How a method is called and what it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodKind {
    /// Returns one value (or nothing).
    Unary,
    /// Returns a stream of items (`StreamInvocation` on the wire).
    Streaming,
}

/// A hub method's signature, used to route and check calls before the hub sees them.
#[derive(Debug, Clone, Copy)]
pub struct MethodInfo {
    /// Canonical name; calls match it case-insensitively.
    pub name: &'static str,
    pub kind: MethodKind,
    /// Ordinary arguments.
    pub params: usize,
    /// Client-to-server streams (ASP.NET's `IAsyncEnumerable`/`ChannelReader` parameters).
    pub upload_streams: usize,
}

impl MethodInfo {
    pub const fn unary(name: &'static str, params: usize) -> Self {
        MethodInfo { name, kind: MethodKind::Unary, params, upload_streams: 0 }
    }
    pub const fn streaming(name: &'static str, params: usize) -> Self {
        MethodInfo { name, kind: MethodKind::Streaming, params, upload_streams: 0 }
    }
    pub const fn with_uploads(mut self, n: usize) -> Self {
        self.upload_streams = n;
        self
    }
}

/// What a method produced.
pub enum HubReply {
    Void,
    Value(Value),
    Stream(LocalBoxStream<'static, Result<Value, HubError>>),
}

impl HubReply {
    /// A serialisable value as a reply (through its JSON form: build a [`Value`] directly for bytes
    /// and instants).
    pub fn value<T: Serialize>(value: T) -> Result<HubReply, HubError> {
        serde_json::to_value(value)
            .map(|v| HubReply::Value(v.into()))
            .map_err(|e| HubError::internal("JsonException", e.to_string()))
    }
}

/// Items a client streams to a method (`streamIds`), ending with `Ok` completion or an error.
pub type UploadStream = mpsc::UnboundedReceiver<Result<Value, String>>;

/// The user a connection authenticated as, decided once at negotiate (or connect) by the hub's
/// authenticator. `kind` + `id` name the principal whose connections form one group.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionUser {
    pub kind: &'static str,
    pub id: String,
    /// Display name / user identifier (ASP.NET's `Context.UserIdentifier`).
    pub name: String,
    /// Extra claims a hub may read.
    pub claims: HashMap<String, String>,
    /// Most concurrent connections this principal may hold; `None` = unlimited.
    pub max_connections: Option<usize>,
}

impl ConnectionUser {
    /// Key of the principal's connection group.
    pub fn principal_key(&self) -> String {
        format!("{}:{}", self.kind, self.id)
    }
}

/// What a hub sees of the caller and of the hub's other clients.
#[derive(Clone)]
pub struct HubContext {
    pub connection_id: Arc<str>,
    pub user: Option<Arc<ConnectionUser>>,
    /// The transport's name as ASP.NET reports it: `WebSockets`, `ServerSentEvents`, `LongPolling`.
    pub transport: &'static str,
    /// Request details hubs may ask for (headers, cookies, query) captured at connect.
    pub request: Arc<RequestInfo>,
    pub(crate) hub: Addr<HubActor>,
    pub(crate) connection: actix::Recipient<super::connection::InvokeClient>,
    pub(crate) caller: actix::Recipient<super::connection::Emit>,
}

/// The parts of the connecting HTTP request a hub may read.
#[derive(Debug, Default, Clone)]
pub struct RequestInfo {
    pub headers: HashMap<String, String>,
    pub cookies: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub remote_addr: Option<String>,
}

impl HubContext {
    /// Sends an invocation to the caller. It goes straight to the caller's mailbox, so it reaches the client
    /// before the completion of the method that sent it, as in ASP.NET. Arguments are hub [`Value`]s or
    /// anything that converts into them (`serde_json::Value` included).
    pub fn send_caller<V: Into<Value>>(&self, target: &str, args: Vec<V>) {
        let args = args.into_iter().map(Into::into).collect();
        self.caller.do_send(super::connection::Emit(super::protocol::HubMessage::invocation(target, args)));
    }

    /// Sends an invocation to clients chosen by `to`.
    pub fn send<V: Into<Value>>(&self, to: Target, target: &str, args: Vec<V>) {
        self.hub.do_send(Outgoing::invocation(to, target, args));
    }

    /// Adds the caller to a group. Group names must be derived from what the caller was checked to own.
    pub fn join_group(&self, group: &str) {
        self.hub.do_send(super::hub_actor::GroupMembership {
            connection_id: self.connection_id.to_string(),
            group: group.to_string(),
            join: true,
        });
    }

    /// Removes the caller from a group.
    pub fn leave_group(&self, group: &str) {
        self.hub.do_send(super::hub_actor::GroupMembership {
            connection_id: self.connection_id.to_string(),
            group: group.to_string(),
            join: false,
        });
    }

    /// Invokes a method on the caller and waits for its result (a client result).
    pub async fn invoke_caller<V: Into<Value>>(&self, target: &str, args: Vec<V>) -> Result<Value, String> {
        let args = args.into_iter().map(Into::into).collect();
        let (reply, result) = tokio::sync::oneshot::channel();
        self.connection
            .send(super::connection::InvokeClient { target: target.to_string(), args, reply })
            .await
            .map_err(|_| "Connection is gone".to_string())?;
        result.await.map_err(|_| "Connection closed before the client answered".to_string())?
    }

    /// The hub's address, to reach other connections.
    pub fn hub(&self) -> &Addr<HubActor> {
        &self.hub
    }
}

/// One call of a hub method.
pub struct Call {
    pub ctx: HubContext,
    pub method: &'static str,
    pub args: Vec<Value>,
    pub uploads: Vec<UploadStream>,
}

impl Call {
    /// Argument `i` as `T`, from either protocol's shape (see [`Value`]'s `Deserializer`); a mismatch is a
    /// binding error, reported as ASP.NET reports it.
    pub fn arg<T: DeserializeOwned>(&self, i: usize) -> Result<T, HubError> {
        let value = self.args.get(i).cloned().unwrap_or(Value::Null);
        value.decode().map_err(|_| {
            HubError::Binding(
                "Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
                    .into(),
            )
        })
    }

    /// Takes upload stream `i`.
    pub fn upload(&mut self, i: usize) -> Option<UploadStream> {
        if i < self.uploads.len() {
            Some(self.uploads.remove(i))
        } else {
            None
        }
    }
}

/// A hub: its methods and hooks. Implementations live in `src/hubs/`, one file each, and know nothing of
/// framing or transports.
pub trait Hub: Send + Sync + 'static {
    /// The methods clients may call.
    fn methods(&self) -> &'static [MethodInfo];

    /// Runs a method; `call.method` is the canonical name from [`Hub::methods`].
    fn invoke(self: Arc<Self>, call: Call) -> LocalBoxFuture<'static, Result<HubReply, HubError>>;

    /// After the handshake. An error closes the connection with that error.
    fn on_connected(self: Arc<Self>, _ctx: HubContext) -> LocalBoxFuture<'static, Result<(), HubError>> {
        Box::pin(async { Ok(()) })
    }

    /// When the connection ends, for any reason.
    fn on_disconnected(self: Arc<Self>, _ctx: HubContext) -> LocalBoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Looks a method up case-insensitively, as ASP.NET does.
pub fn find_method(methods: &'static [MethodInfo], name: &str) -> Option<&'static MethodInfo> {
    methods.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}
