//! One-time WebSocket tickets: what a ticket grants, the store trait with its Redis implementation
//! (the in-process one is [`super::ticket_actor`]), and [`Tickets`], which issues and consumes them.
//!
//! A ticket is 32 random bytes in URL-safe base64, stored as `ws_ticket:{ticket}` with a TTL.
//! Consumption removes it atomically (Redis GETDEL, or a GET+DEL Lua script where GETDEL is missing; the
//! TicketActor's mailbox serialises it), so across all nodes and races a ticket opens one socket.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_redis::redis;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::auth::jwt::ChatIdentity;
use crate::auth::secrets::{constant_time_eq, random_urlsafe};

/// Redis key prefix of a stored ticket.
pub const KEY_PREFIX: &str = "ws_ticket:";
/// Random bytes in a ticket.
pub const TICKET_BYTES: usize = 32;
/// Length of a ticket's text (32 bytes in unpadded base64).
pub const TICKET_LEN: usize = 43;

/// What a ticket lets its holder do: open one chat socket as this identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketGrant {
    pub tenant_id: String,
    pub user_id: String,
    pub session_id: String,
    pub conversation_id: Option<String>,
    /// Unix milliseconds; tickets older than the maximum age are refused whatever their TTL says.
    pub created_at_ms: i64,
}

impl TicketGrant {
    /// The identity the socket acts as.
    pub fn identity(&self) -> ChatIdentity {
        ChatIdentity {
            tenant_id: self.tenant_id.clone(),
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
        }
    }
}

/// A stored ticket: the secret itself (compared in constant time on consumption) and its grant.
/// No `Debug`, so that it cannot end up in a log line.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredTicket {
    pub ticket: String,
    #[serde(flatten)]
    pub grant: TicketGrant,
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, or answered garbage; the detail is for the log.
    #[error("ticket store unavailable: {0}")]
    Unavailable(String),
    /// The in-process store holds its maximum of unexpired tickets.
    #[error("ticket store full")]
    Full,
    /// A ticket with this text already exists (never expected with 256 random bits).
    #[error("ticket collision")]
    Collision,
}

/// Where tickets are kept. Both operations are atomic: `take` hands a ticket to at most one caller.
pub trait TicketStore: Send + Sync {
    /// A short name for logs and the benchmark.
    fn kind(&self) -> &'static str;
    /// Stores a ticket that disappears after `ttl`.
    fn put<'a>(&'a self, ticket: StoredTicket, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Removes and returns the ticket stored under `ticket`, if it is there and unexpired.
    fn take<'a>(&'a self, ticket: &'a str) -> BoxFuture<'a, Result<Option<StoredTicket>, StoreError>>;
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

/// GET and DEL in one atomic step, for servers older than Redis 6.2 (no GETDEL).
const GET_AND_DELETE: &str = r"
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
return value";

const MODE_UNKNOWN: u8 = 0;
const MODE_GETDEL: u8 = 1;
const MODE_LUA: u8 = 2;

/// How [`RedisTicketStore`] consumes: detected on first use, or forced (tests, benchmark).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeMode {
    Detect,
    GetDel,
    Lua,
}

/// Tickets in Redis, shared by every node.
pub struct RedisTicketStore {
    pool: deadpool_redis::Pool,
    timeout: Duration,
    mode: AtomicU8,
    script: redis::Script,
}

impl RedisTicketStore {
    /// A store over `pool`; each operation (including getting a connection) is bounded by `timeout`.
    pub fn new(pool: deadpool_redis::Pool, timeout: Duration, mode: ConsumeMode) -> Self {
        let mode = match mode {
            ConsumeMode::Detect => MODE_UNKNOWN,
            ConsumeMode::GetDel => MODE_GETDEL,
            ConsumeMode::Lua => MODE_LUA,
        };
        RedisTicketStore { pool, timeout, mode: AtomicU8::new(mode), script: redis::Script::new(GET_AND_DELETE) }
    }

    /// The consumption command in use: `None` until the first consumption detected it.
    pub fn consume_mode(&self) -> Option<ConsumeMode> {
        match self.mode.load(Ordering::Relaxed) {
            MODE_GETDEL => Some(ConsumeMode::GetDel),
            MODE_LUA => Some(ConsumeMode::Lua),
            _ => None,
        }
    }

    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, work).await.map_err(|_| StoreError::Unavailable("timed out".into()))?
    }

    async fn connection(&self) -> Result<deadpool_redis::Connection, StoreError> {
        self.pool.get().await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn take_raw(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.connection().await?;
        if self.mode.load(Ordering::Relaxed) != MODE_LUA {
            let result: Result<Option<String>, redis::RedisError> =
                redis::cmd("GETDEL").arg(key).query_async(&mut conn).await;
            match result {
                Ok(value) => {
                    self.mode.store(MODE_GETDEL, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(e) if is_unknown_command(&e) => {
                    // Detected once: from now on every consumption uses the script.
                    if self.mode.swap(MODE_LUA, Ordering::Relaxed) != MODE_LUA {
                        tracing::info!("Redis has no GETDEL; tickets are consumed by a Lua GET+DEL");
                    }
                }
                Err(e) => return Err(StoreError::Unavailable(e.to_string())),
            }
        }
        self.script.key(key).invoke_async(&mut conn).await.map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

fn is_unknown_command(e: &redis::RedisError) -> bool {
    e.to_string().to_ascii_lowercase().contains("unknown command")
}

impl TicketStore for RedisTicketStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn put<'a>(&'a self, ticket: StoredTicket, ttl: Duration) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.bounded(async move {
            let key = format!("{KEY_PREFIX}{}", ticket.ticket);
            let value = serde_json::to_string(&ticket).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let mut conn = self.connection().await?;
            let set: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("PX")
                .arg(ttl.as_millis().max(1) as u64)
                .arg("NX")
                .query_async(&mut conn)
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            match set {
                Some(_) => Ok(()),
                None => Err(StoreError::Collision),
            }
        }))
    }

    fn take<'a>(&'a self, ticket: &'a str) -> BoxFuture<'a, Result<Option<StoredTicket>, StoreError>> {
        Box::pin(self.bounded(async move {
            let key = format!("{KEY_PREFIX}{ticket}");
            match self.take_raw(&key).await? {
                None => Ok(None),
                Some(raw) => serde_json::from_str(&raw)
                    .map(Some)
                    .map_err(|e| StoreError::Unavailable(format!("unreadable ticket record: {e}"))),
            }
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Issuing and consuming
// ---------------------------------------------------------------------------------------------

/// Why a ticket was not issued or not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Unknown, already used, expired, too old, or malformed: one answer for all of them.
    #[error("Invalid or expired ticket")]
    Invalid,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot generate a ticket")]
    Random,
}

/// A freshly issued ticket. No `Debug`: it is a secret.
pub struct IssuedTicket {
    pub ticket: String,
    pub expires_in: u64,
}

/// Issues and consumes tickets over the configured store. Cheap to clone.
#[derive(Clone)]
pub struct Tickets {
    store: Arc<dyn TicketStore>,
    ttl: Duration,
    max_age: Duration,
}

impl Tickets {
    /// Tickets over `store` living `ttl`, never accepted past `max_age` after creation.
    pub fn new(store: Arc<dyn TicketStore>, ttl: Duration, max_age: Duration) -> Tickets {
        Tickets { store, ttl, max_age }
    }

    /// The store's name ("redis" or "memory").
    pub fn store_kind(&self) -> &'static str {
        self.store.kind()
    }

    /// Issues a ticket granting one socket as `identity` (optionally for one conversation).
    pub async fn issue(
        &self,
        identity: &ChatIdentity,
        conversation_id: Option<String>,
    ) -> Result<IssuedTicket, TicketError> {
        let ticket = random_urlsafe(TICKET_BYTES).map_err(|_| TicketError::Random)?;
        let stored = StoredTicket {
            ticket: ticket.clone(),
            grant: TicketGrant {
                tenant_id: identity.tenant_id.clone(),
                user_id: identity.user_id.clone(),
                session_id: identity.session_id.clone(),
                conversation_id,
                created_at_ms: crate::db::now_ms(),
            },
        };
        self.store.put(stored, self.ttl).await?;
        crate::ops::metrics::TICKETS_ISSUED.inc();
        Ok(IssuedTicket { ticket, expires_in: self.ttl.as_secs() })
    }

    /// Consumes a presented ticket: at most one caller ever gets its grant. Counted as consumed or
    /// rejected for `/metrics` (a store failure is neither).
    pub async fn consume(&self, presented: &str) -> Result<TicketGrant, TicketError> {
        let result = self.check(presented).await;
        match &result {
            Ok(_) => crate::ops::metrics::TICKETS_CONSUMED.inc(),
            Err(TicketError::Invalid) => crate::ops::metrics::TICKETS_REJECTED.inc(),
            Err(_) => {}
        }
        result
    }

    async fn check(&self, presented: &str) -> Result<TicketGrant, TicketError> {
        // Anything that cannot be a ticket never reaches the store.
        if presented.len() != TICKET_LEN
            || !presented.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(TicketError::Invalid);
        }
        let stored = self.store.take(presented).await?.ok_or(TicketError::Invalid)?;
        if !constant_time_eq(&stored.ticket, presented) {
            return Err(TicketError::Invalid);
        }
        // A slightly negative age (another node's clock ahead of ours) is fine.
        let age_ms = crate::db::now_ms().saturating_sub(stored.grant.created_at_ms);
        if age_ms > 0 && age_ms as u128 > self.max_age.as_millis() {
            return Err(TicketError::Invalid);
        }
        Ok(stored.grant)
    }
}
