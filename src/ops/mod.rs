//! Operations: health checks and request logging.

pub mod cors;
pub mod health;
pub mod metrics;
pub mod pages;
pub mod prometheus;
pub mod provider_health;
pub mod request_log;
