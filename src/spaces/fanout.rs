//! The fan-out directory of the spaces gateway: which stream connections listen to which space. Each
//! space is a group (`space:{id}`) of connection actors; a connection joins a group only after its
//! membership (or the secret key) was checked, so a publish to a space can reach no stranger. Removing a
//! membership or deleting a space takes the connections out of the group at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use actix::prelude::*;

use crate::db::spaces::EventRow;

/// What a connection actor receives from the directory.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub enum StreamSignal {
    /// A stored event of a space the connection listens to.
    Event(Arc<EventRow>),
    /// The connection's entity joined a space (at this Unix-ms time): an entity stream starts receiving it.
    SpaceAdded(String, i64),
    /// The space is gone for this connection (membership removed, or space deleted).
    SpaceRemoved(String),
}

/// The group name of a space.
pub fn group(space_id: &str) -> String {
    format!("space:{space_id}")
}

struct Subscriber {
    entity_id: Option<String>,
    /// An entity stream: follows its entity into spaces it joins later.
    follows_entity: bool,
    recipient: Recipient<StreamSignal>,
    groups: HashSet<String>,
}

/// The directory actor: one per node.
#[derive(Default)]
pub struct SpaceFanout {
    groups: HashMap<String, HashSet<u64>>,
    subscribers: HashMap<u64, Subscriber>,
    next_id: u64,
}

impl Actor for SpaceFanout {
    type Context = Context<Self>;
}

/// Registers a connection with the groups of `spaces`; answers its id.
#[derive(Message)]
#[rtype(result = "u64")]
pub struct Register {
    pub entity_id: Option<String>,
    pub follows_entity: bool,
    pub spaces: Vec<String>,
    pub recipient: Recipient<StreamSignal>,
}

impl Handler<Register> for SpaceFanout {
    type Result = u64;
    fn handle(&mut self, msg: Register, _: &mut Context<Self>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let groups: HashSet<String> = msg.spaces.iter().map(|s| group(s)).collect();
        for g in &groups {
            self.groups.entry(g.clone()).or_default().insert(id);
        }
        self.subscribers.insert(
            id,
            Subscriber {
                entity_id: msg.entity_id,
                follows_entity: msg.follows_entity,
                recipient: msg.recipient,
                groups,
            },
        );
        id
    }
}

/// Removes a connection (it ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Unregister(pub u64);

impl Handler<Unregister> for SpaceFanout {
    type Result = ();
    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        if let Some(sub) = self.subscribers.remove(&msg.0) {
            for g in sub.groups {
                self.leave(&g, msg.0);
            }
        }
    }
}

impl SpaceFanout {
    fn leave(&mut self, group: &str, id: u64) {
        if let Some(members) = self.groups.get_mut(group) {
            members.remove(&id);
            if members.is_empty() {
                self.groups.remove(group);
            }
        }
    }
}

/// Delivers stored events to the groups of their spaces.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<EventRow>);

impl Handler<Publish> for SpaceFanout {
    type Result = ();
    fn handle(&mut self, msg: Publish, _: &mut Context<Self>) {
        for event in msg.0 {
            let Some(members) = self.groups.get(&group(&event.space_id)) else { continue };
            let event = Arc::new(event);
            for id in members {
                if let Some(sub) = self.subscribers.get(id) {
                    sub.recipient.do_send(StreamSignal::Event(event.clone()));
                }
            }
        }
    }
}

/// An entity joined a space: its entity streams join the space's group.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Joined {
    pub space_id: String,
    pub entity_id: String,
    pub joined_at: i64,
}

impl Handler<Joined> for SpaceFanout {
    type Result = ();
    fn handle(&mut self, msg: Joined, _: &mut Context<Self>) {
        let g = group(&msg.space_id);
        for (id, sub) in self.subscribers.iter_mut() {
            if sub.follows_entity
                && sub.entity_id.as_deref() == Some(msg.entity_id.as_str())
                && sub.groups.insert(g.clone())
            {
                self.groups.entry(g.clone()).or_default().insert(*id);
                sub.recipient.do_send(StreamSignal::SpaceAdded(msg.space_id.clone(), msg.joined_at));
            }
        }
    }
}

/// Takes a space away from the streams of one entity (`Some`: its membership was removed) or from every
/// stream (`None`: the space was deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Revoke {
    pub space_id: String,
    pub entity_id: Option<String>,
}

impl Handler<Revoke> for SpaceFanout {
    type Result = ();
    fn handle(&mut self, msg: Revoke, _: &mut Context<Self>) {
        let g = group(&msg.space_id);
        let Some(members) = self.groups.get(&g).cloned() else { return };
        for id in members {
            let Some(sub) = self.subscribers.get_mut(&id) else { continue };
            if msg.entity_id.is_none() || sub.entity_id == msg.entity_id {
                sub.groups.remove(&g);
                sub.recipient.do_send(StreamSignal::SpaceRemoved(msg.space_id.clone()));
                self.leave(&g, id);
            }
        }
    }
}

/// Live connections, for leak checks in tests and metrics.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ConnectionCount;

impl Handler<ConnectionCount> for SpaceFanout {
    type Result = usize;
    fn handle(&mut self, _: ConnectionCount, _: &mut Context<Self>) -> usize {
        self.subscribers.len()
    }
}
