//! ASP.NET Core SignalR, server side. It knows nothing of keys or tasks: `protocol` is framing and
//! message types, the rest is connections, transports and hubs.

pub mod protocol;
