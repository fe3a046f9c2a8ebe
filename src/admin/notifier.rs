//! The AdminNotifier actor: turns what happens to keys, spend, connection caps and providers into events
//! on the admin hub (`/hubs/admin-notifications`). Whoever notices a change (the admin API, spend
//! accounting, the connection groups, provider health) sends an [`AdminEvent`] here and need not know
//! the hub, its groups or its event names. An event noticed by one node goes through the backplane, so
//! the operators connected to any node hear of it once; an event that every node notices by itself
//! (a key's expiry, provider health adopted from the backplane) is told to this node's operators only.
//! Before the hub is attached, local events are dropped: there is nobody to tell.

use actix::prelude::*;
use serde_json::{json, Value};

use crate::backplane::{Backplane, Broadcast};
use crate::ops::provider_health::ProviderHealthInfo;
use crate::signalr::hub_actor::{HubActor, Outgoing, Target};
use crate::virtual_keys::KeyInfo;

/// Every connection of the admin hub is in this group.
pub const ADMINS_GROUP: &str = "admins";

/// The group of admin connections that subscribed to one virtual key.
pub fn key_group(key_id: i64) -> String {
    format!("admin-vkey:{key_id}")
}

/// The group of admin connections that subscribed to one provider.
pub fn provider_group(name: &str) -> String {
    format!("admin-provider:{}", name.to_ascii_lowercase())
}

/// How urgent a key update is: high when the key stops working (disabled, deleted, out of budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Normal,
    High,
}

impl Priority {
    fn name(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// Something operators are told about.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum AdminEvent {
    /// A key was created (through the admin API).
    KeyCreated(KeyInfo),
    /// A key changed; `update_type` names the change (`Updated`, `Disabled`, `Enabled`, `SpendUpdated`, …).
    KeyUpdated { info: KeyInfo, update_type: &'static str, details: Value, priority: Priority },
    /// A key was deleted.
    KeyDeleted { key_id: i64 },
    /// A key reached its expiry time (its connections were just closed). Every node notices it by
    /// itself, so it is told to this node's operators only.
    KeyExpired { key_id: i64 },
    /// A key's spend crossed a threshold of its budget.
    SpendAlert { key_id: i64, threshold: u32, current_spend: f64, budget_limit: f64 },
    /// A key's connection cap refused a connection.
    ConnectionLimitReached { key_id: i64, limit: usize },
    /// A provider's health changed (on any node: told to this node's operators only).
    ProviderHealth(ProviderHealthInfo),
}

/// Attaches the admin hub once it exists.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachHub(pub Addr<HubActor>);

/// See the module documentation.
pub struct AdminNotifier {
    backplane: Addr<Backplane>,
    hub: Option<Addr<HubActor>>,
}

impl AdminNotifier {
    /// A notifier whose events reach every node through `backplane`.
    pub fn new(backplane: Addr<Backplane>) -> Self {
        AdminNotifier { backplane, hub: None }
    }
}

impl Actor for AdminNotifier {
    type Context = Context<Self>;
}

impl Handler<AttachHub> for AdminNotifier {
    type Result = ();
    fn handle(&mut self, msg: AttachHub, _: &mut Self::Context) {
        self.hub = Some(msg.0);
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn key_update(key_id: i64, update_type: &str, details: Value, priority: Priority) -> Value {
    json!({
        "virtualKeyId": key_id,
        "updateType": update_type,
        "details": details,
        "priority": priority.name(),
        "timestamp": now(),
    })
}

/// The alert's type and severity for a crossed threshold (percent of the budget).
pub fn alert_kind(threshold: u32) -> (&'static str, &'static str) {
    match threshold {
        t if t >= 100 => ("BudgetExceeded", "critical"),
        t if t >= 95 => ("HighSpend", "critical"),
        t if t >= 90 => ("HighSpend", "high"),
        _ => ("HighSpend", "warning"),
    }
}

impl AdminEvent {
    /// Noticed by every node on its own (so each tells only its own operators), rather than by the one
    /// node where it happened (which tells every node's operators through the backplane).
    fn noticed_by_every_node(&self) -> bool {
        matches!(self, AdminEvent::KeyExpired { .. } | AdminEvent::ProviderHealth(_))
    }
}

impl Handler<AdminEvent> for AdminNotifier {
    type Result = ();
    fn handle(&mut self, event: AdminEvent, _: &mut Self::Context) {
        let local = event.noticed_by_every_node();
        let send = |to: Target, target: &str, arg: Value| {
            let path = crate::hubs::admin_notifications::PATH;
            if !local {
                self.backplane.do_send(Broadcast::invocation(path, to, target, vec![arg]));
            } else if let Some(hub) = &self.hub {
                hub.do_send(Outgoing::invocation(to, target, vec![arg]));
            }
        };
        let admins = || Target::Group(ADMINS_GROUP.to_string());
        match event {
            AdminEvent::KeyCreated(info) => send(admins(), "VirtualKeyCreated", json!(info)),
            AdminEvent::KeyUpdated { info, update_type, details, priority } => {
                let id = info.id;
                send(admins(), "VirtualKeyUpdated", json!(info));
                send(Target::Group(key_group(id)), "VirtualKeyUpdate", key_update(id, update_type, details, priority));
            }
            AdminEvent::KeyDeleted { key_id } => {
                send(admins(), "VirtualKeyDeleted", json!({ "virtualKeyId": key_id, "timestamp": now() }));
                let update = key_update(key_id, "Deleted", json!({}), Priority::High);
                send(Target::Group(key_group(key_id)), "VirtualKeyUpdate", update);
            }
            AdminEvent::KeyExpired { key_id } => {
                let update = key_update(key_id, "Expired", json!({}), Priority::High);
                send(Target::Group(key_group(key_id)), "VirtualKeyUpdate", update);
            }
            AdminEvent::SpendAlert { key_id, threshold, current_spend, budget_limit } => {
                let (alert_type, severity) = alert_kind(threshold);
                let percentage = if budget_limit > 0.0 { current_spend / budget_limit * 100.0 } else { 100.0 };
                send(
                    admins(),
                    "HighSpendAlert",
                    json!({
                        "virtualKeyId": key_id,
                        "alertType": alert_type,
                        "currentSpend": current_spend,
                        "budgetLimit": budget_limit,
                        "percentageUsed": (percentage * 100.0).round() / 100.0,
                        "threshold": threshold,
                        "severity": severity,
                        "timestamp": now(),
                    }),
                );
            }
            AdminEvent::ConnectionLimitReached { key_id, limit } => send(
                admins(),
                "ConnectionLimitReached",
                json!({ "virtualKeyId": key_id, "limit": limit, "timestamp": now() }),
            ),
            AdminEvent::ProviderHealth(info) => send(
                admins(),
                "ProviderHealthUpdate",
                json!({
                    "provider": info.provider,
                    "status": info.status,
                    "responseTimeMs": info.response_time_ms,
                    "details": info.details,
                    "timestamp": info.last_checked,
                }),
            ),
        }
    }
}

/// The thresholds (percent of the budget) that spend crossed going from `before` to `after`: each one
/// is reported once, when it is first reached.
pub fn crossed_thresholds(before: f64, after: f64, budget: f64) -> Vec<u32> {
    // `budget` may be NaN or zero: neither has thresholds.
    if budget.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || after <= before {
        return Vec::new();
    }
    [80u32, 90, 95, 100]
        .into_iter()
        .filter(|t| {
            let line = budget * f64::from(*t) / 100.0;
            before < line && after >= line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_crossed_once() {
        assert_eq!(crossed_thresholds(0.0, 7.9, 10.0), Vec::<u32>::new());
        assert_eq!(crossed_thresholds(7.9, 8.0, 10.0), vec![80]);
        assert_eq!(crossed_thresholds(8.0, 8.5, 10.0), Vec::<u32>::new());
        assert_eq!(crossed_thresholds(8.5, 12.0, 10.0), vec![90, 95, 100]);
        assert_eq!(crossed_thresholds(10.0, 11.0, 10.0), Vec::<u32>::new());
        assert_eq!(crossed_thresholds(0.0, 5.0, 0.0), Vec::<u32>::new());
        assert_eq!(alert_kind(100).0, "BudgetExceeded");
        assert_eq!(alert_kind(80), ("HighSpend", "warning"));
    }
}
