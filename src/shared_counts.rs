//! Cluster-wide connection counts in Redis, so that a principal's cap (a virtual key's
//! `maxConnections`) holds across every node, not per node. Each live connection is an entry in a
//! sorted set per principal, scored by the time it expires. Nodes refresh their entries regularly, so
//! the entries of a node that died vanish after the lease. Reservations are atomic (one Lua script),
//! so two nodes cannot both take the last place.

use std::time::Duration;

use deadpool_redis::redis;

/// How long a connection's place outlives its node's last refresh: the entries of a node that died
/// stop counting after this.
pub const LEASE: Duration = Duration::from_secs(30);

/// Drops expired entries and the places of connections that just left (ARGV[4..], whose own release
/// may still be on its way), then adds the connection unless the set is full. Answers the new count,
/// or -1 when full. Time is Redis's own clock, so nodes with skewed clocks agree.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 4, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
end
local lease = tonumber(ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
    return -1
  end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
return redis.call('ZCARD', KEYS[1])
";

/// Principals refreshed per round trip.
const REFRESH_CHUNK: usize = 200;

/// Extends the lease of live connections (re-adding any that lapsed during a pause).
const REFRESH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease)
return 0
";

/// See the module documentation.
pub struct SharedCounts {
    pool: deadpool_redis::Pool,
    prefix: String,
    lease: Duration,
    timeout: Duration,
    reserve: redis::Script,
    refresh: redis::Script,
}

impl SharedCounts {
    /// Counts kept under `prefix` (the deployment's key prefix), each entry living `lease` unless refreshed.
    pub fn new(pool: deadpool_redis::Pool, prefix: String, lease: Duration, timeout: Duration) -> Self {
        SharedCounts {
            pool,
            prefix,
            lease,
            timeout,
            reserve: redis::Script::new(RESERVE),
            refresh: redis::Script::new(REFRESH),
        }
    }

    /// How often live entries must be refreshed to outlive their lease with margin.
    pub fn refresh_every(&self) -> Duration {
        self.lease / 3
    }

    fn key(&self, principal: &str) -> String {
        format!("{}:conns:{principal}", self.prefix)
    }

    async fn bounded<T>(&self, work: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
        tokio::time::timeout(self.timeout, work).await.map_err(|_| "timed out".to_string())?
    }

    /// Takes a place for `connection_id` among the principal's connections on all nodes: `Ok(false)`
    /// when `cap` places are already taken. `left` are connections of this principal that ended here
    /// and whose release may not have reached Redis yet: their places are given back first, so that a
    /// client reconnecting right after closing is not refused by its own old connection.
    pub async fn reserve(
        &self,
        principal: &str,
        connection_id: &str,
        cap: usize,
        left: &[String],
    ) -> Result<bool, String> {
        self.bounded(async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            let mut call = self.reserve.key(self.key(principal));
            call.arg(self.lease.as_millis() as u64).arg(connection_id).arg(cap);
            for id in left {
                call.arg(id);
            }
            let count: i64 = call.invoke_async(&mut conn).await.map_err(|e| e.to_string())?;
            Ok(count >= 0)
        })
        .await
    }

    /// Gives the place back (the connection ended).
    pub async fn release(&self, principal: &str, connection_id: &str) -> Result<(), String> {
        self.bounded(async {
            let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
            redis::cmd("ZREM")
                .arg(self.key(principal))
                .arg(connection_id)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// Renews the leases of this node's live connections, per principal: a pipeline per chunk of
    /// principals, each chunk within the timeout, so that many principals cannot starve the last ones.
    pub async fn refresh(&self, live: Vec<(String, Vec<String>)>) -> Result<(), String> {
        for chunk in live.chunks(REFRESH_CHUNK) {
            self.bounded(async {
                let mut conn = self.pool.get().await.map_err(|e| e.to_string())?;
                let mut pipe = redis::pipe();
                for (principal, ids) in chunk {
                    let call = pipe.cmd("EVALSHA").arg(self.refresh.get_hash()).arg(1).arg(self.key(principal));
                    call.arg(self.lease.as_millis() as u64).arg(ids).ignore();
                }
                match pipe.query_async::<()>(&mut conn).await {
                    Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                        // First use on this Redis (or after SCRIPT FLUSH): load the script, then run again.
                        self.refresh.prepare_invoke().load_async(&mut conn).await.map_err(|e| e.to_string())?;
                        pipe.query_async::<()>(&mut conn).await.map_err(|e| e.to_string())
                    }
                    other => other.map_err(|e| e.to_string()),
                }
            })
            .await?;
        }
        Ok(())
    }
}
