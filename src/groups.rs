//! Connection groups per principal (a virtual key, a JWT user): one ConnectionGroupActor per principal,
//! across hubs, which counts that principal's connections, enforces its cap and closes them all at once
//! (a disabled key loses its live connections within a second). The [`ConnectionGroups`] directory
//! routes to them and stops a group's actor when its last connection leaves. With Redis, a cap also
//! holds across nodes: each capped connection takes a place in [`SharedCounts`] too.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::shared_counts::SharedCounts;
use crate::signalr::connection::CloseConnection;

/// Why a principal may not open another connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapReached {
    #[error("Connection limit reached: at most {limit} concurrent connections are allowed for this key")]
    Limit { limit: usize },
    #[error("Too many connection attempts; try again in {seconds} seconds")]
    CoolingDown { seconds: u64 },
}

/// One principal's connections.
pub struct ConnectionGroupActor {
    key: String,
    members: HashMap<String, (String, Recipient<CloseConnection>)>,
}

impl Actor for ConnectionGroupActor {
    type Context = Context<Self>;
}

/// Adds a connection; refused when the cap is reached.
#[derive(Message)]
#[rtype(result = "Result<usize, CapReached>")]
pub struct Join {
    pub key: String,
    pub connection_id: String,
    pub hub: String,
    pub closer: Recipient<CloseConnection>,
    pub cap: Option<usize>,
}

impl Handler<Join> for ConnectionGroupActor {
    type Result = Result<usize, CapReached>;
    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Self::Result {
        if let Some(limit) = msg.cap {
            if self.members.len() >= limit {
                return Err(CapReached::Limit { limit });
            }
        }
        self.members.insert(msg.connection_id, (msg.hub, msg.closer));
        Ok(self.members.len())
    }
}

/// Removes a connection (it ended).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Leave {
    pub key: String,
    pub connection_id: String,
}

impl Handler<Leave> for ConnectionGroupActor {
    type Result = usize;
    fn handle(&mut self, msg: Leave, _: &mut Self::Context) -> usize {
        self.members.remove(&msg.connection_id);
        self.members.len()
    }
}

/// Closes every connection of the principal with a Close message carrying `reason`.
#[derive(Message, Clone)]
#[rtype(result = "usize")]
pub struct CloseAll {
    pub key: String,
    pub reason: String,
}

impl Handler<CloseAll> for ConnectionGroupActor {
    type Result = usize;
    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> usize {
        tracing::info!(principal = %self.key, connections = self.members.len(), "closing all connections of a principal");
        for (_, closer) in self.members.values() {
            closer.do_send(CloseConnection { error: Some(msg.reason.clone()), allow_reconnect: false });
        }
        self.members.len()
    }
}

/// How many connections a principal has, per hub.
#[derive(Message)]
#[rtype(result = "HashMap<String, usize>")]
pub struct CountByHub {
    pub key: String,
}

impl Handler<CountByHub> for ConnectionGroupActor {
    type Result = MessageResult<CountByHub>;
    fn handle(&mut self, _: CountByHub, _: &mut Self::Context) -> Self::Result {
        let mut counts = HashMap::new();
        for (hub, _) in self.members.values() {
            *counts.entry(hub.clone()).or_insert(0) += 1;
        }
        MessageResult(counts)
    }
}

/// The directory of principal groups. It also refuses, for a cool-down, a principal that opens
/// connections abusively fast (more than `burst` within `window`).
pub struct ConnectionGroups {
    groups: HashMap<String, (Addr<ConnectionGroupActor>, usize)>,
    recent: HashMap<String, VecDeque<Instant>>,
    cooling: HashMap<String, Instant>,
    burst: usize,
    window: Duration,
    cooldown: Duration,
    /// Told when a virtual key's cap refuses a connection (the admin hub's `ConnectionLimitReached`).
    on_limit: Option<Recipient<crate::admin::notifier::AdminEvent>>,
    /// Cluster-wide counts (with Redis), and this node's connections holding a place there.
    shared: Option<Arc<SharedCounts>>,
    placed: HashMap<String, HashSet<String>>,
    /// Connections whose cluster-wide place is being reserved: `true` once they left meanwhile, so that
    /// their place is given back rather than kept (and refreshed) for a connection that is gone.
    reserving: HashMap<String, bool>,
    /// Connections that left recently, per principal, whose release is sent in the background: the
    /// principal's next reservation gives their places back first (ordering the two), and the list is
    /// cleared at every refresh, when those releases are long done.
    released: HashMap<String, Vec<String>>,
}

impl ConnectionGroups {
    /// Reports refusals by a virtual key's cap to `listener`, so operators see keys at their limit.
    pub fn notify_limits(mut self, listener: Recipient<crate::admin::notifier::AdminEvent>) -> Self {
        self.on_limit = Some(listener);
        self
    }

    /// Enforces caps across every node sharing `counts`.
    pub fn share_counts(mut self, counts: Arc<SharedCounts>) -> Self {
        self.shared = Some(counts);
        self
    }

    /// `burst` = 0 turns the cool-down off.
    pub fn new(burst: usize, window: Duration, cooldown: Duration) -> Self {
        ConnectionGroups {
            groups: HashMap::new(),
            recent: HashMap::new(),
            cooling: HashMap::new(),
            burst,
            window,
            cooldown,
            on_limit: None,
            shared: None,
            placed: HashMap::new(),
            reserving: HashMap::new(),
            released: HashMap::new(),
        }
    }

    /// Gives a connection's cluster-wide place back, in the background.
    fn release(&mut self, principal: String, connection_id: String) {
        let Some(shared) = self.shared.clone() else { return };
        self.released.entry(principal.clone()).or_default().push(connection_id.clone());
        actix::spawn(async move {
            if let Err(e) = shared.release(&principal, &connection_id).await {
                // The lease runs out by itself; until then the place stays taken.
                crate::ops::metrics::REDIS_ERRORS.inc();
                tracing::warn!(error = %e, "cannot release a cluster-wide connection place");
            }
        });
    }

    /// Records a connection attempt; `Err` while the principal is cooling down.
    fn admit(&mut self, key: &str) -> Result<(), CapReached> {
        if self.burst == 0 {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(until) = self.cooling.get(key) {
            if *until > now {
                return Err(CapReached::CoolingDown { seconds: (*until - now).as_secs().max(1) });
            }
            self.cooling.remove(key);
        }
        let attempts = self.recent.entry(key.to_string()).or_default();
        while attempts.front().is_some_and(|t| now.duration_since(*t) > self.window) {
            attempts.pop_front();
        }
        attempts.push_back(now);
        if attempts.len() > self.burst {
            attempts.clear();
            self.cooling.insert(key.to_string(), now + self.cooldown);
            tracing::warn!(principal = %key, "connection attempts too fast; cooling down");
            return Err(CapReached::CoolingDown { seconds: self.cooldown.as_secs().max(1) });
        }
        Ok(())
    }
}

impl Default for ConnectionGroups {
    fn default() -> Self {
        ConnectionGroups::new(0, Duration::from_secs(10), Duration::from_secs(30))
    }
}

impl Actor for ConnectionGroups {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(shared) = self.shared.clone() else { return };
        ctx.run_interval(shared.refresh_every(), move |act, _| {
            act.released.clear();
            let live: Vec<(String, Vec<String>)> =
                act.placed.iter().map(|(principal, ids)| (principal.clone(), ids.iter().cloned().collect())).collect();
            let shared = shared.clone();
            actix::spawn(async move {
                if let Err(e) = shared.refresh(live).await {
                    crate::ops::metrics::REDIS_ERRORS.inc();
                    tracing::warn!(error = %e, "cannot refresh cluster-wide connection counts");
                }
            });
        });
    }
}

impl Handler<Join> for ConnectionGroups {
    type Result = ResponseActFuture<Self, Result<usize, CapReached>>;
    fn handle(&mut self, msg: Join, _: &mut Self::Context) -> Self::Result {
        let key = msg.key.clone();
        if let Err(refusal) = self.admit(&key) {
            return Box::pin(actix::fut::ready(Err(refusal)));
        }
        if self.recent.len() > 10_000 {
            // Forget idle principals so the table cannot grow without bound.
            let window = self.window;
            self.recent.retain(|_, a| a.back().is_some_and(|t| t.elapsed() <= window));
        }
        let addr = self
            .groups
            .entry(key.clone())
            .or_insert_with(|| (ConnectionGroupActor { key: key.clone(), members: HashMap::new() }.start(), 0))
            .0
            .clone();
        let connection_id = msg.connection_id.clone();
        let placed_id = connection_id.clone();
        let shared = self.shared.clone().zip(msg.cap);
        let mut left = Vec::new();
        if shared.is_some() {
            self.reserving.insert(placed_id.clone(), false);
            left = self.released.remove(&key).unwrap_or_default();
        }
        let (group, joined) = (addr.clone(), addr.send(msg));
        let principal = key.clone();
        let work = async move {
            let mut count = joined.await.unwrap_or(Err(CapReached::Limit { limit: 0 }))?;
            let Some((shared, limit)) = shared else { return Ok((count, false)) };
            // This node had room; the other nodes' connections count too.
            match shared.reserve(&principal, &connection_id, limit, &left).await {
                Ok(true) => Ok((count, true)),
                Ok(false) => {
                    count = group.send(Leave { key: principal, connection_id }).await.unwrap_or(0);
                    tracing::debug!(left = count, "connection refused by the cluster-wide cap");
                    Err(CapReached::Limit { limit })
                }
                Err(e) => {
                    // Redis down: the cap holds per node until it is back, rather than refusing everyone.
                    // Kept as placed: the next refresh counts it cluster-wide again (the script may even
                    // have run), and its release is a harmless no-op if it never did.
                    crate::ops::metrics::REDIS_ERRORS.inc();
                    tracing::warn!(error = %e, "cluster-wide connection count unavailable; enforcing the cap per node");
                    Ok((count, true))
                }
            }
        };
        Box::pin(work.into_actor(self).map(move |result, act, _| {
            let left_meanwhile = act.reserving.remove(&placed_id).unwrap_or(false);
            match result {
                Ok((n, placed)) => {
                    if placed && left_meanwhile {
                        act.release(key.clone(), placed_id);
                    } else if placed {
                        act.placed.entry(key.clone()).or_default().insert(placed_id);
                    }
                    // Re-insert if a concurrent Leave of another connection emptied the entry meanwhile: the
                    // actor still holds us. If we left ourselves, the Leave already set the count.
                    if !left_meanwhile {
                        act.groups.entry(key).or_insert_with(|| (addr, n)).1 = n;
                    }
                    Ok(n)
                }
                Err(refusal) => {
                    if let (CapReached::Limit { limit }, Some(listener)) = (&refusal, &act.on_limit) {
                        if let Some(key_id) = key.strip_prefix("vkey:").and_then(|id| id.parse::<i64>().ok()) {
                            listener.do_send(crate::admin::notifier::AdminEvent::ConnectionLimitReached {
                                key_id,
                                limit: *limit,
                            });
                        }
                    }
                    if act.groups.get(&key).is_some_and(|(_, count)| *count == 0) {
                        act.groups.remove(&key);
                    }
                    Err(refusal)
                }
            }
        }))
    }
}

impl Handler<Leave> for ConnectionGroups {
    type Result = ResponseActFuture<Self, usize>;
    fn handle(&mut self, msg: Leave, _: &mut Self::Context) -> Self::Result {
        let key = msg.key.clone();
        if let Some(left) = self.reserving.get_mut(&msg.connection_id) {
            *left = true;
        }
        if let Some(ids) = self.placed.get_mut(&key) {
            if ids.remove(&msg.connection_id) {
                if ids.is_empty() {
                    self.placed.remove(&key);
                }
                self.release(key.clone(), msg.connection_id.clone());
            }
        }
        let Some((addr, _)) = self.groups.get(&key) else {
            return Box::pin(actix::fut::ready(0));
        };
        Box::pin(addr.send(msg).into_actor(self).map(move |result, act, _| {
            let left = result.unwrap_or(0);
            if left == 0 {
                act.groups.remove(&key);
            } else if let Some((_, count)) = act.groups.get_mut(&key) {
                *count = left;
            }
            left
        }))
    }
}

impl Handler<CloseAll> for ConnectionGroups {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, msg: CloseAll, _: &mut Self::Context) -> Self::Result {
        let addr = self.groups.get(&msg.key).map(|(a, _)| a.clone());
        Box::pin(async move {
            match addr {
                Some(addr) => addr.send(msg).await.unwrap_or(0),
                None => 0,
            }
        })
    }
}

impl Handler<CountByHub> for ConnectionGroups {
    type Result = ResponseFuture<HashMap<String, usize>>;
    fn handle(&mut self, msg: CountByHub, _: &mut Self::Context) -> Self::Result {
        let addr = self.groups.get(&msg.key).map(|(a, _)| a.clone());
        Box::pin(async move {
            match addr {
                Some(addr) => addr.send(msg).await.unwrap_or_default(),
                None => HashMap::new(),
            }
        })
    }
}

/// Number of principals with live connections, for leak checks.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct PrincipalCount;

impl Handler<PrincipalCount> for ConnectionGroups {
    type Result = usize;
    fn handle(&mut self, _: PrincipalCount, _: &mut Self::Context) -> usize {
        self.groups.len()
    }
}
