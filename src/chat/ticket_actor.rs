//! TicketActor: the in-process ticket store for a node without Redis. It owns the tickets; its mailbox
//! handles one message at a time, which is what makes consumption atomic. [`ActorTicketStore`] puts it
//! behind the [`TicketStore`] trait.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::future::BoxFuture;

use super::tickets::{StoreError, StoredTicket, TicketStore};

/// Most unexpired tickets held at once; beyond it issuing answers 503 rather than growing without bound.
pub const MAX_TICKETS: usize = 200_000;
/// How often expired tickets are swept out.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Owns the unconsumed tickets of this process.
pub struct TicketActor {
    tickets: HashMap<String, (StoredTicket, Instant)>,
    capacity: usize,
}

impl TicketActor {
    /// An empty store holding at most `capacity` tickets.
    pub fn new(capacity: usize) -> Self {
        TicketActor { tickets: HashMap::new(), capacity }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        self.tickets.retain(|_, (_, expires)| *expires > now);
    }
}

impl Default for TicketActor {
    fn default() -> Self {
        TicketActor::new(MAX_TICKETS)
    }
}

impl Actor for TicketActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_EVERY, |actor, _| actor.sweep());
    }
}

/// Stores a ticket until `ttl` has passed.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct PutTicket {
    pub ticket: StoredTicket,
    pub ttl: Duration,
}

impl Handler<PutTicket> for TicketActor {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: PutTicket, _: &mut Self::Context) -> Self::Result {
        if self.tickets.len() >= self.capacity {
            self.sweep();
            if self.tickets.len() >= self.capacity {
                return Err(StoreError::Full);
            }
        }
        let key = msg.ticket.ticket.clone();
        if self.tickets.contains_key(&key) {
            return Err(StoreError::Collision);
        }
        self.tickets.insert(key, (msg.ticket, Instant::now() + msg.ttl));
        Ok(())
    }
}

/// Removes a ticket and hands it over if it had not expired.
#[derive(Message)]
#[rtype(result = "Option<StoredTicket>")]
pub struct TakeTicket {
    pub ticket: String,
}

impl Handler<TakeTicket> for TicketActor {
    type Result = Option<StoredTicket>;

    fn handle(&mut self, msg: TakeTicket, _: &mut Self::Context) -> Self::Result {
        let (stored, expires) = self.tickets.remove(&msg.ticket)?;
        (expires > Instant::now()).then_some(stored)
    }
}

/// How many unexpired-or-unswept tickets the actor holds (for tests and health).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct CountTickets;

impl Handler<CountTickets> for TicketActor {
    type Result = usize;

    fn handle(&mut self, _: CountTickets, _: &mut Self::Context) -> usize {
        self.tickets.len()
    }
}

/// The TicketActor as a [`TicketStore`]; a stopped actor is an unavailable store.
pub struct ActorTicketStore {
    addr: Addr<TicketActor>,
}

impl ActorTicketStore {
    /// Wraps a running actor.
    pub fn new(addr: Addr<TicketActor>) -> Self {
        ActorTicketStore { addr }
    }

    /// Starts a TicketActor on the current arbiter and wraps it.
    pub fn start() -> Self {
        ActorTicketStore::new(TicketActor::default().start())
    }

    /// The actor's address.
    pub fn addr(&self) -> &Addr<TicketActor> {
        &self.addr
    }
}

impl TicketStore for ActorTicketStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn put<'a>(&'a self, ticket: StoredTicket, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.addr.send(PutTicket { ticket, ttl }).await.map_err(|e| StoreError::Unavailable(e.to_string()))?
        })
    }

    fn take<'a>(&'a self, ticket: &'a str) -> BoxFuture<'a, Result<Option<StoredTicket>, StoreError>> {
        Box::pin(async move {
            self.addr
                .send(TakeTicket { ticket: ticket.to_string() })
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))
        })
    }
}
