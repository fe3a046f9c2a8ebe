//! The Backplane: the one seam that every cluster-wide fan-out goes through. Examples are admin events,
//! provider health, and the spaces gateway's events, joins and revocations. Anything that only one node
//! notices, but that connections on every node must see, is sent here as a [`Broadcast`].
//!
//! The Backplane delivers a broadcast to this node's actors at once. When Redis is configured, it also
//! appends the broadcast to a shared Redis stream. Every other node follows that stream and delivers
//! the broadcast to its own actors. Connections stay in their node's actors; only broadcasts cross.
//! Without Redis, the Backplane is purely local and costs one actor hop.
//!
//! Why a stream and not PUBLISH: a node whose Redis connection drops for a moment resumes from the
//! last entry it read. With PUBLISH it would silently miss what was sent meanwhile. The stream is
//! trimmed to a bounded length.
//!
//! Task updates do not come through here. Every node already follows their own stream
//! (`generation::progress`), so those updates need no second hop.

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::db::spaces::EventRow;
use crate::groups::{CloseAll, ConnectionGroups};
use crate::ops::metrics;
use crate::ops::provider_health::{Adopt, HealthStatus, ProviderHealth, ProviderHealthInfo};
use crate::signalr::hub_actor::{HubActor, Outgoing, Target};
use crate::spaces::fanout::{self, SpaceFanout};

/// How many broadcasts may wait for the Redis writer before new ones are dropped (and counted).
const OUTBOUND_CAPACITY: usize = 65_536;
/// Broadcasts appended to Redis in one round trip.
const WRITE_BATCH: usize = 256;
/// Approximate length the shared stream is trimmed to. A node that lags further behind than this
/// loses the oldest entries.
const STREAM_MAX_LEN: usize = 100_000;

/// Something every node must deliver to its own connections.
#[derive(Debug, Clone, Serialize, Deserialize, Message)]
#[rtype(result = "()")]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Broadcast {
    /// An invocation of `target` on some clients of the hub served at the path `hub`.
    #[serde(rename_all = "camelCase")]
    HubInvocation { hub: String, to: Target, target: String, arguments: Vec<serde_json::Value> },
    /// Stored events of spaces, for the streams of those spaces.
    #[serde(rename_all = "camelCase")]
    SpaceEvents { events: Vec<EventRow> },
    /// An entity joined a space: its entity streams start receiving that space.
    #[serde(rename_all = "camelCase")]
    SpaceJoined { space_id: String, entity_id: String, joined_at: i64 },
    /// A space is taken away from one entity's streams, or from every stream (`entity_id: None`).
    #[serde(rename_all = "camelCase")]
    SpaceRevoked { space_id: String, entity_id: Option<String> },
    /// A provider's health changed on some node (from `previous`, if it had one).
    #[serde(rename_all = "camelCase")]
    ProviderHealth { info: ProviderHealthInfo, previous: Option<HealthStatus> },
    /// Every connection of a principal (e.g. a key just disabled) is closed with `reason`.
    #[serde(rename_all = "camelCase")]
    ClosePrincipal { principal: String, reason: String },
}

impl Broadcast {
    /// An invocation of `target` with `arguments` on the clients `to` of the hub at `hub`.
    pub fn invocation(hub: &str, to: Target, target: &str, arguments: Vec<serde_json::Value>) -> Self {
        Broadcast::HubInvocation { hub: hub.to_string(), to, target: target.to_string(), arguments }
    }
}

/// Makes this node's actors the local destinations of broadcasts.
#[derive(Message)]
#[rtype(result = "()")]
pub enum Attach {
    /// The hub served at a path.
    Hub(String, Addr<HubActor>),
    /// The spaces gateway's fan-out directory.
    Spaces(Addr<SpaceFanout>),
    /// The provider health table.
    ProviderHealth(Addr<ProviderHealth>),
    /// The per-principal connection groups.
    Groups(Addr<ConnectionGroups>),
}

/// A broadcast that arrived from another node through Redis.
#[derive(Message)]
#[rtype(result = "()")]
struct Remote(Broadcast);

/// See the module documentation.
pub struct Backplane {
    node_id: String,
    redis: Option<(deadpool_redis::Pool, String)>,
    /// To the Redis writer: each broadcast with this node's sequence number for it.
    outbound: Option<mpsc::Sender<(u64, String)>>,
    sent: u64,
    hubs: HashMap<String, Addr<HubActor>>,
    spaces: Option<Addr<SpaceFanout>>,
    provider_health: Option<Addr<ProviderHealth>>,
    groups: Option<Addr<ConnectionGroups>>,
}

impl Backplane {
    /// A backplane for node `node_id`. With `redis` (a pool and the stream's full key), broadcasts also
    /// reach every node that follows the same stream.
    pub fn new(node_id: impl Into<String>, redis: Option<(deadpool_redis::Pool, String)>) -> Self {
        Backplane {
            node_id: node_id.into(),
            redis,
            outbound: None,
            sent: 0,
            hubs: HashMap::new(),
            spaces: None,
            provider_health: None,
            groups: None,
        }
    }

    /// Hands a broadcast to this node's actors. The returned future resolves once the actors that
    /// must act before the sender goes on (joins and revocations) have done so.
    fn deliver_locally(&self, broadcast: Broadcast, remote: bool) -> BoxFuture<'static, ()> {
        match broadcast {
            Broadcast::HubInvocation { hub, to, target, arguments } => {
                if let Some(addr) = self.hubs.get(&hub) {
                    addr.do_send(Outgoing::invocation(to, &target, arguments));
                }
            }
            Broadcast::SpaceEvents { events } => {
                if let Some(spaces) = &self.spaces {
                    spaces.do_send(fanout::Publish(events));
                }
            }
            // Queued like the events around them (a bounded `send` could be parked behind a full mailbox
            // and overtaken); the caller then waits on a barrier queued behind them.
            Broadcast::SpaceJoined { space_id, entity_id, joined_at } => {
                if let Some(spaces) = &self.spaces {
                    spaces.do_send(fanout::Joined { space_id, entity_id, joined_at });
                    return barrier(spaces);
                }
            }
            Broadcast::SpaceRevoked { space_id, entity_id } => {
                if let Some(spaces) = &self.spaces {
                    spaces.do_send(fanout::Revoke { space_id, entity_id });
                    return barrier(spaces);
                }
            }
            Broadcast::ProviderHealth { info, previous } => {
                if let Some(health) = &self.provider_health {
                    health.do_send(Adopt { info, previous, remote });
                }
            }
            Broadcast::ClosePrincipal { principal, reason } => {
                if let Some(groups) = &self.groups {
                    groups.do_send(CloseAll { key: principal, reason });
                }
            }
        }
        futures_util::future::ready(()).boxed()
    }
}

/// Resolves once `spaces` has handled everything queued before it.
fn barrier(spaces: &Addr<SpaceFanout>) -> BoxFuture<'static, ()> {
    let done = spaces.send(fanout::ConnectionCount);
    async move {
        let _ = done.await;
    }
    .boxed()
}

impl Actor for Backplane {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(65_536);
        if let Some((pool, stream)) = self.redis.clone() {
            let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
            self.outbound = Some(tx);
            actix::spawn(write_stream(pool.clone(), stream.clone(), self.node_id.clone(), rx));
            ctx.spawn(read_stream(pool, stream, self.node_id.clone(), ctx.address()).into_actor(self));
        }
    }
}

impl Handler<Attach> for Backplane {
    type Result = ();
    fn handle(&mut self, msg: Attach, _: &mut Self::Context) {
        match msg {
            Attach::Hub(path, addr) => {
                self.hubs.insert(path, addr);
            }
            Attach::Spaces(addr) => self.spaces = Some(addr),
            Attach::ProviderHealth(addr) => self.provider_health = Some(addr),
            Attach::Groups(addr) => self.groups = Some(addr),
        }
    }
}

impl Handler<Broadcast> for Backplane {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Broadcast, _: &mut Self::Context) -> Self::Result {
        if let Some(outbound) = &self.outbound {
            match serde_json::to_string(&msg) {
                Ok(payload) => {
                    self.sent += 1;
                    if outbound.try_send((self.sent, payload)).is_err() {
                        metrics::BACKPLANE_DROPPED.inc();
                        tracing::warn!("backplane: Redis writer is behind; a broadcast reaches this node only");
                    }
                }
                Err(e) => tracing::error!(error = %e, "backplane: cannot encode a broadcast"),
            }
        }
        self.deliver_locally(msg, false)
    }
}

impl Handler<Remote> for Backplane {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, msg: Remote, _: &mut Self::Context) -> Self::Result {
        metrics::BACKPLANE_RECEIVED.inc();
        self.deliver_locally(msg.0, true)
    }
}

/// Appends queued broadcasts to the stream, in the order they were sent, a batch per round trip. While
/// Redis is away the batch is retried (with backoff) rather than dropped: a spaces stream on another node
/// would otherwise wait for its missing event until the next one. Meanwhile new broadcasts queue, up to
/// the queue's bound. A retry may append entries that a timed-out attempt already appended; readers
/// skip them by their sequence number.
async fn write_stream(
    pool: deadpool_redis::Pool,
    stream: String,
    node_id: String,
    mut rx: mpsc::Receiver<(u64, String)>,
) {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    while rx.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let mut backoff = Duration::from_millis(100);
        loop {
            match append(&pool, &stream, &node_id, &batch).await {
                Ok(()) => {
                    metrics::BACKPLANE_SENT.add(batch.len() as u64);
                    break;
                }
                Err(e) => {
                    metrics::REDIS_ERRORS.inc();
                    tracing::warn!(error = %e, waiting = batch.len(), "backplane: append failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        batch.clear();
    }
}

async fn append(
    pool: &deadpool_redis::Pool,
    stream: &str,
    node_id: &str,
    batch: &[(u64, String)],
) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let mut pipe = deadpool_redis::redis::pipe();
    for (seq, payload) in batch {
        pipe.cmd("XADD")
            .arg(stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAX_LEN)
            .arg("*")
            .arg("node")
            .arg(node_id)
            .arg("seq")
            .arg(seq)
            .arg("msg")
            .arg(payload)
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await.map_err(|e| e.to_string())
}

/// Follows the stream from its end, forever, handing other nodes' broadcasts to the actor, each once
/// (a node's sequence numbers only grow, so an entry appended again by a retry is recognised).
async fn read_stream(pool: deadpool_redis::Pool, stream: String, node_id: String, me: Addr<Backplane>) {
    let mut last_seen: HashMap<String, u64> = HashMap::new();
    crate::redis_pool::follow_stream(pool, stream, "backplane", |entry| {
        let Some(from) = entry.get::<String>("node") else { return };
        if from == node_id {
            return;
        }
        let seq: u64 = entry.get("seq").unwrap_or(0);
        let last = last_seen.entry(from).or_insert(0);
        if seq <= *last {
            return;
        }
        *last = seq;
        let payload: Option<String> = entry.get("msg");
        match payload.as_deref().map(serde_json::from_str::<Broadcast>) {
            Some(Ok(broadcast)) => me.do_send(Remote(broadcast)),
            _ => tracing::warn!(id = %entry.id, "backplane: unreadable entry skipped"),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasts_survive_the_wire() {
        let sent = Broadcast::invocation(
            "/hubs/admin-notifications",
            Target::Group("admins".into()),
            "VirtualKeyCreated",
            vec![serde_json::json!({"id": 7})],
        );
        let text = serde_json::to_string(&sent).unwrap();
        let back: Broadcast = serde_json::from_str(&text).unwrap();
        match back {
            Broadcast::HubInvocation { hub, to: Target::Group(group), target, arguments } => {
                assert_eq!(hub, "/hubs/admin-notifications");
                assert_eq!(group, "admins");
                assert_eq!(target, "VirtualKeyCreated");
                assert_eq!(arguments, vec![serde_json::json!({"id": 7})]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(serde_json::from_str::<Broadcast>(r#"{"kind":"nope"}"#).is_err());
    }
}
