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
