//! Switchyard: a realtime broker that authenticates real-time clients and routes events only to the
//! connections allowed to see them. See `../shared/DESIGN.md` and README.md for the whole picture.

pub mod admin;
pub mod auth;
pub mod backplane;
pub mod chat;
pub mod config;
pub mod db;
pub mod error;
pub mod generation;
pub mod groups;
pub mod hubs;
pub mod logging;
pub mod ops;
pub mod redis_pool;
pub mod server;
pub mod shared_counts;
pub mod signalr;
pub mod spaces;
pub mod state;
pub mod virtual_keys;
