//! Operations: health checks and request logging.

pub mod health;
pub mod request_log;
