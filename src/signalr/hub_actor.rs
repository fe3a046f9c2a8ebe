//! The HubActor: one per hub path. It owns the hub's connection table (by public id and by secret token)
//! and its groups, and fans messages out. A fan-out is encoded once per protocol and the same bytes are
//! handed to every recipient.

use std::collections::{HashMap, HashSet};

use actix::prelude::*;
use bytes::Bytes;

use super::connection::{CloseConnection, Connection, Deliver};
use super::protocol::{HubMessage, ProtocolKind, Value};

/// Who a fan-out goes to. Serializable: the backplane carries it between nodes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Target {
    All,
    AllExcept(Vec<String>),
    Connection(String),
    Connections(Vec<String>),
    Group(String),
    GroupExcept(String, Vec<String>),
}

struct Entry {
    addr: Addr<Connection>,
    token: String,
    /// Known after the handshake; connections without one receive no fan-out.
    protocol: Option<ProtocolKind>,
    groups: HashSet<String>,
    transport: &'static str,
    user: Option<String>,
    credential: Option<String>,
}

/// See the module documentation.
pub struct HubActor {
    path: String,
    connections: HashMap<String, Entry>,
    tokens: HashMap<String, String>,
    groups: HashMap<String, HashSet<String>>,
    delivered: u64,
}

impl HubActor {
    pub fn new(path: impl Into<String>) -> Self {
        HubActor {
            path: path.into(),
            connections: HashMap::new(),
            tokens: HashMap::new(),
            groups: HashMap::new(),
            delivered: 0,
        }
    }

    fn recipients(&self, target: &Target) -> Vec<&String> {
        let by_ids =
            |ids: &[String]| ids.iter().filter_map(|id| self.connections.get_key_value(id).map(|(k, _)| k)).collect();
        match target {
            Target::All => self.connections.keys().collect(),
            Target::AllExcept(except) => self.connections.keys().filter(|id| !except.contains(id)).collect(),
            Target::Connection(id) => by_ids(std::slice::from_ref(id)),
            Target::Connections(ids) => by_ids(ids),
            Target::Group(name) => self.groups.get(name).map(|m| m.iter().collect()).unwrap_or_default(),
            Target::GroupExcept(name, except) => {
                self.groups.get(name).map(|m| m.iter().filter(|id| !except.contains(id)).collect()).unwrap_or_default()
            }
        }
    }
}

impl Actor for HubActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Fan-out bursts queue here; a larger mailbox keeps senders from waiting on `send`.
        ctx.set_mailbox_capacity(4096);
    }
}

/// A connection exists (at negotiate, or at a WebSocket opened without negotiate).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub id: String,
    pub token: String,
    pub addr: Addr<Connection>,
    pub transport: &'static str,
    pub user: Option<String>,
    /// SHA-256 of the credential negotiated with, if the hub's authenticator reads one.
    pub credential: Option<String>,
}

impl Handler<Register> for HubActor {
    type Result = ();
    fn handle(&mut self, msg: Register, _: &mut Self::Context) {
        self.tokens.insert(msg.token.clone(), msg.id.clone());
        self.connections.insert(
            msg.id,
            Entry {
                addr: msg.addr,
                token: msg.token,
                protocol: None,
                groups: HashSet::new(),
                transport: msg.transport,
                user: msg.user,
                credential: msg.credential,
            },
        );
    }
}

/// The handshake chose a protocol; the connection now receives fan-outs.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Handshaken {
    pub id: String,
    pub protocol: ProtocolKind,
    pub transport: &'static str,
}

impl Handler<Handshaken> for HubActor {
    type Result = ();
    fn handle(&mut self, msg: Handshaken, _: &mut Self::Context) {
        if let Some(entry) = self.connections.get_mut(&msg.id) {
            entry.protocol = Some(msg.protocol);
            entry.transport = msg.transport;
        }
    }
}

/// A connection ended: forget it and its group memberships.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub id: String,
}

impl Handler<Unregister> for HubActor {
    type Result = ();
    fn handle(&mut self, msg: Unregister, _: &mut Self::Context) {
        if let Some(entry) = self.connections.remove(&msg.id) {
            self.tokens.remove(&entry.token);
            for group in entry.groups {
                if let Some(members) = self.groups.get_mut(&group) {
                    members.remove(&msg.id);
                    if members.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }
}

/// Finds a connection by its secret token (the `id` of transport requests), with the principal it was
/// bound to at negotiate.
#[derive(Message)]
#[rtype(result = "Option<(Addr<Connection>, Option<String>, Option<String>)>")]
pub struct Lookup {
    pub token: String,
}

impl Handler<Lookup> for HubActor {
    type Result = Option<(Addr<Connection>, Option<String>, Option<String>)>;
    fn handle(&mut self, msg: Lookup, _: &mut Self::Context) -> Self::Result {
        let id = self.tokens.get(&msg.token)?;
        self.connections.get(id).map(|e| (e.addr.clone(), e.user.clone(), e.credential.clone()))
    }
}

/// Joins or leaves a group. Only a hub handler that checked ownership sends this.
#[derive(Message)]
#[rtype(result = "()")]
pub struct GroupMembership {
    pub connection_id: String,
    pub group: String,
    pub join: bool,
}

impl Handler<GroupMembership> for HubActor {
    type Result = ();
    fn handle(&mut self, msg: GroupMembership, _: &mut Self::Context) {
        let Some(entry) = self.connections.get_mut(&msg.connection_id) else {
            return;
        };
        if msg.join {
            entry.groups.insert(msg.group.clone());
            self.groups.entry(msg.group).or_default().insert(msg.connection_id);
        } else {
            entry.groups.remove(&msg.group);
            if let Some(members) = self.groups.get_mut(&msg.group) {
                members.remove(&msg.connection_id);
                if members.is_empty() {
                    self.groups.remove(&msg.group);
                }
            }
        }
    }
}

/// A message for some of the hub's clients.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Outgoing {
    pub to: Target,
    pub message: HubMessage,
}

impl Outgoing {
    /// An invocation of `target` on the chosen clients; arguments convert once here, not per recipient.
    pub fn invocation<V: Into<Value>>(to: Target, target: &str, args: Vec<V>) -> Self {
        Outgoing { to, message: HubMessage::invocation(target, args.into_iter().map(Into::into).collect()) }
    }
}

impl Handler<Outgoing> for HubActor {
    /// How many connections the message was handed to.
    type Result = usize;
    fn handle(&mut self, msg: Outgoing, _: &mut Self::Context) -> usize {
        let mut encoded: [Option<Bytes>; 2] = [None, None];
        let mut count = 0;
        let sequenced = msg.message.is_sequenced();
        for id in self.recipients(&msg.to) {
            let Some(entry) = self.connections.get(id) else {
                continue;
            };
            let Some(protocol) = entry.protocol else {
                continue;
            };
            let slot = match protocol {
                ProtocolKind::Json => 0,
                ProtocolKind::MessagePack => 1,
            };
            if encoded[slot].is_none() {
                match protocol.encode_to_vec(&msg.message) {
                    Ok(bytes) => encoded[slot] = Some(Bytes::from(bytes)),
                    Err(e) => {
                        tracing::error!(hub = %self.path, error = %e, "cannot encode a fan-out message");
                        return 0;
                    }
                }
            }
            if let Some(bytes) = &encoded[slot] {
                entry.addr.do_send(Deliver { bytes: bytes.clone(), sequenced });
                count += 1;
            }
        }
        self.delivered += count as u64;
        count
    }
}

/// Closes connections chosen by `to` with a Close message.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CloseConnections {
    pub to: Target,
    pub error: Option<String>,
    pub allow_reconnect: bool,
}

impl Handler<CloseConnections> for HubActor {
    type Result = usize;
    fn handle(&mut self, msg: CloseConnections, _: &mut Self::Context) -> usize {
        let targets: Vec<Addr<Connection>> = self
            .recipients(&msg.to)
            .into_iter()
            .filter_map(|id| self.connections.get(id))
            .map(|e| e.addr.clone())
            .collect();
        for addr in &targets {
            addr.do_send(CloseConnection { error: msg.error.clone(), allow_reconnect: msg.allow_reconnect });
        }
        targets.len()
    }
}

/// Counts for ops and leak checks.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HubStats {
    pub path: String,
    pub connections: usize,
    pub group_entries: usize,
    pub groups: usize,
    pub by_transport: HashMap<&'static str, usize>,
    pub messages_delivered: u64,
}

/// Asks for [`HubStats`].
#[derive(Message)]
#[rtype(result = "HubStats")]
pub struct GetStats;

impl Handler<GetStats> for HubActor {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Self::Context) -> Self::Result {
        let mut by_transport = HashMap::new();
        for e in self.connections.values() {
            *by_transport.entry(e.transport).or_insert(0) += 1;
        }
        MessageResult(HubStats {
            path: self.path.clone(),
            connections: self.connections.len(),
            group_entries: self.groups.values().map(HashSet::len).sum(),
            groups: self.groups.len(),
            by_transport,
            messages_delivered: self.delivered,
        })
    }
}

/// The ids of the connections of one user (principal id), for admin views.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct ConnectionsOfUser {
    pub user: String,
}

impl Handler<ConnectionsOfUser> for HubActor {
    type Result = MessageResult<ConnectionsOfUser>;
    fn handle(&mut self, msg: ConnectionsOfUser, _: &mut Self::Context) -> Self::Result {
        MessageResult(
            self.connections
                .iter()
                .filter(|(_, e)| e.user.as_deref() == Some(msg.user.as_str()))
                .map(|(id, _)| id.clone())
                .collect(),
        )
    }
}

/// Finds a connection by its public id.
#[derive(Message)]
#[rtype(result = "Option<Addr<Connection>>")]
pub struct FindConnection {
    pub id: String,
}

impl Handler<FindConnection> for HubActor {
    type Result = Option<Addr<Connection>>;
    fn handle(&mut self, msg: FindConnection, _: &mut Self::Context) -> Self::Result {
        self.connections.get(&msg.id).map(|e| e.addr.clone())
    }
}

/// Every connection of the hub, for the operators' connection list.
#[derive(Message)]
#[rtype(result = "Vec<Addr<Connection>>")]
pub struct ListConnections;

impl Handler<ListConnections> for HubActor {
    type Result = MessageResult<ListConnections>;
    fn handle(&mut self, _: ListConnections, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.connections.values().map(|e| e.addr.clone()).collect())
    }
}
