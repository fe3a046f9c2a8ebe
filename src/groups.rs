//! Connection groups per principal (a virtual key, a JWT user): one ConnectionGroupActor per principal,
//! across hubs, which counts that principal's connections, enforces its cap and closes them all at once
//! (a disabled key loses its live connections within a second). The [`ConnectionGroups`] directory
//! routes to them and stops a group's actor when its last connection leaves.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use actix::prelude::*;

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
}

impl ConnectionGroups {
    /// Reports refusals by a virtual key's cap to `listener`, so operators see keys at their limit.
    pub fn notify_limits(mut self, listener: Recipient<crate::admin::notifier::AdminEvent>) -> Self {
        self.on_limit = Some(listener);
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
        }
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
}

impl Handler<Join> for ConnectionGroups {
    type Result = ResponseActFuture<Self, Result<usize, CapReached>>;
    fn handle(&mut self, msg: Join, ctx: &mut Self::Context) -> Self::Result {
        let key = msg.key.clone();
        if let Err(refusal) = self.admit(&key) {
            return Box::pin(actix::fut::ready(Err(refusal)));
        }
        if self.recent.len() > 10_000 {
            // Forget idle principals so the table cannot grow without bound.
            let window = self.window;
            self.recent.retain(|_, a| a.back().is_some_and(|t| t.elapsed() <= window));
        }
        let _ = ctx;
        let addr = self
            .groups
            .entry(key.clone())
            .or_insert_with(|| (ConnectionGroupActor { key: key.clone(), members: HashMap::new() }.start(), 0))
            .0
            .clone();
        let group = addr.clone();
        Box::pin(addr.send(msg).into_actor(self).map(move |result, act, _| {
            let result = result.unwrap_or(Err(CapReached::Limit { limit: 0 }));
            match &result {
                // Re-insert if a concurrent Leave emptied the entry meanwhile: the actor still holds us.
                Ok(n) => act.groups.entry(key).or_insert_with(|| (group, *n)).1 = *n,
                Err(refusal) => {
                    if let (CapReached::Limit { limit }, Some(listener)) = (refusal, &act.on_limit) {
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
                }
            }
            result
        }))
    }
}

impl Handler<Leave> for ConnectionGroups {
    type Result = ResponseActFuture<Self, usize>;
    fn handle(&mut self, msg: Leave, _: &mut Self::Context) -> Self::Result {
        let key = msg.key.clone();
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
