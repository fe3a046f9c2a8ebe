//! The admin REST API, behind the master key.

pub mod connections;
pub mod key_changes;
pub mod notifier;
pub mod providers;
pub mod stats;
pub mod virtual_keys;

use actix_web::web;

/// Registers the admin routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    virtual_keys::configure(cfg);
    stats::configure(cfg);
    providers::configure(cfg);
    connections::configure(cfg);
}
