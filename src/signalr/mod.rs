//! ASP.NET Core SignalR, server side. It knows nothing of keys or tasks: `protocol` is framing and
//! message types; `endpoint` answers negotiate and serves the transports; `connection` is the actor per
//! connection, `outlet` its bounded queue to a streaming transport and `replay` its stateful-reconnect
//! buffer; `hub_actor` owns a hub's connections and groups; `hub` is the trait hubs implement.

pub mod connection;
pub mod endpoint;
pub mod hub;
pub mod hub_actor;
pub mod options;
pub mod outlet;
pub mod protocol;
mod replay;

pub use endpoint::{Anonymous, AuthRejection, Authenticator, HubEndpoint};
pub use hub::{Call, ConnectionUser, Hub, HubContext, HubError, HubReply, MethodInfo};
pub use hub_actor::{HubActor, Target};
pub use options::{HubOptions, TransportKind};
