//! Process-wide counters for ops views. Atomics, not locks: they sit on hot paths.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing count.
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// A value that goes up and down.
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Self::new()
    }
}

/// Live SignalR connection actors.
pub static CONNECTIONS_OPEN: Gauge = Gauge::new();
/// Hub method invocations received.
pub static INVOCATIONS: Counter = Counter::new();
/// Hub method invocations that failed.
pub static INVOCATION_ERRORS: Counter = Counter::new();
/// Connections closed because they could not keep up.
pub static SLOW_CONSUMERS: Counter = Counter::new();
/// Refused credentials on hubs.
pub static AUTH_FAILURES: Counter = Counter::new();
/// Connections refused because their principal was at its cap.
pub static CONNECTION_CAP_REFUSALS: Counter = Counter::new();
/// Task updates handed to hubs for delivery.
pub static TASK_UPDATES_PUBLISHED: Counter = Counter::new();
/// Failed Redis operations.
pub static REDIS_ERRORS: Counter = Counter::new();
/// Broadcasts this node appended to the backplane stream for the other nodes.
pub static BACKPLANE_SENT: Counter = Counter::new();
/// Broadcasts from other nodes delivered here.
pub static BACKPLANE_RECEIVED: Counter = Counter::new();
/// Broadcasts that reached this node only (Redis writer behind or unavailable).
pub static BACKPLANE_DROPPED: Counter = Counter::new();

/// Messages received from SignalR clients (decoded hub messages, pings included).
pub static MESSAGES_IN: Counter = Counter::new();
/// Messages written to SignalR clients' transports (fan-out copies counted per recipient).
pub static MESSAGES_OUT: Counter = Counter::new();
/// Task updates handed to a connection (one per subscribed recipient).
pub static TASK_UPDATES_DELIVERED: Counter = Counter::new();
/// Failed storage operations seen by request handlers and background work.
pub static STORAGE_ERRORS: Counter = Counter::new();
/// Chat tickets issued (`POST /api/agent/ticket`).
pub static TICKETS_ISSUED: Counter = Counter::new();
/// Chat tickets exchanged for a socket.
pub static TICKETS_CONSUMED: Counter = Counter::new();
/// Presented chat tickets refused (unknown, used, expired, too old or malformed).
pub static TICKETS_REJECTED: Counter = Counter::new();
/// Hub invocations by hub, method and outcome (`ok` / `error`).
pub static INVOCATIONS_BY_METHOD: LabeledCounter<3> = LabeledCounter::new();
/// Refused credentials by reason (`missing`, `invalid`, `forbidden`).
pub static AUTH_FAILURES_BY_REASON: LabeledCounter<1> = LabeledCounter::new();
/// From a task update being stored to its fan-out to the hub's connections, in seconds.
pub static DELIVERY_LATENCY: Histogram = Histogram::new();

/// How many distinct label sets a [`LabeledCounter`] holds; further ones are counted in `overflow`.
const LABEL_SLOTS: usize = 256;

/// One label set's slot: written once, then only read, so lookups never lock.
struct Slot<const N: usize> {
    labels: std::sync::OnceLock<[Box<str>; N]>,
    count: AtomicU64,
}

/// A counter per label set (e.g. hub, method, outcome), lock-free on the hot path: label sets live in a
/// fixed open-addressed table whose slots are claimed once (`OnceLock`) and then only read. Label values
/// must come from a bounded set (hub paths, method names known to a hub), never from client text.
pub struct LabeledCounter<const N: usize> {
    slots: [Slot<N>; LABEL_SLOTS],
    overflow: AtomicU64,
}

impl<const N: usize> LabeledCounter<N> {
    pub const fn new() -> Self {
        LabeledCounter {
            slots: [const { Slot { labels: std::sync::OnceLock::new(), count: AtomicU64::new(0) } }; LABEL_SLOTS],
            overflow: AtomicU64::new(0),
        }
    }

    fn start(labels: &[&str; N]) -> usize {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        labels.hash(&mut h);
        (h.finish() as usize) % LABEL_SLOTS
    }

    /// Adds one to the label set's count.
    pub fn inc(&self, labels: [&str; N]) {
        let start = Self::start(&labels);
        for i in 0..LABEL_SLOTS {
            let slot = &self.slots[(start + i) % LABEL_SLOTS];
            let claimed = slot.labels.get_or_init(|| labels.map(Box::from));
            if claimed.iter().zip(labels.iter()).all(|(a, b)| &**a == *b) {
                slot.count.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Every label set with its count.
    pub fn snapshot(&self) -> Vec<([&str; N], u64)> {
        self.slots
            .iter()
            .filter_map(|s| s.labels.get().map(|l| (std::array::from_fn(|i| &*l[i]), s.count.load(Ordering::Relaxed))))
            .collect()
    }

    /// Counts that found no free slot.
    pub fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

impl<const N: usize> Default for LabeledCounter<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` is implied).
pub const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// A Prometheus histogram over [`LATENCY_BUCKETS`], in atomics: observing is a few relaxed adds.
pub struct Histogram {
    /// Non-cumulative counts per bucket; the last one is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; LATENCY_BUCKETS.len() + 1],
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation of `seconds` (negative values, from clock skew, count as zero).
    pub fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() { seconds.max(0.0) } else { 0.0 };
        let i = LATENCY_BUCKETS.iter().position(|b| seconds <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Cumulative bucket counts (the last is `+Inf`), the sum in seconds, and the count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        (cumulative, self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, total)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labeled_counters_keep_label_sets_apart() {
        let c: LabeledCounter<2> = LabeledCounter::new();
        c.inc(["a", "x"]);
        c.inc(["a", "x"]);
        c.inc(["a", "y"]);
        let mut snap = c.snapshot();
        snap.sort();
        assert_eq!(snap, vec![(["a", "x"], 2), (["a", "y"], 1)]);
        for i in 0..LABEL_SLOTS + 5 {
            c.inc(["many", &i.to_string()]);
        }
        assert_eq!(c.overflow(), 7);
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new();
        h.observe(0.0005);
        h.observe(0.02);
        h.observe(5.0);
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[4], 2);
        assert_eq!(*buckets.last().unwrap(), 3);
        assert!((sum - 5.0205).abs() < 1e-6);
    }
}
