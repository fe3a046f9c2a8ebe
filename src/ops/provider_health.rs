//! The ProviderHealth actor: the health of every known provider (the simulated one and those named in
//! `generation.providers`), computed from recent task outcomes or reported by workers. Operators see it
//! on the admin hub; a change of status is pushed to them as `ProviderHealthUpdate`. A change noticed on
//! one node goes through the backplane, so that every node's table, admins and navigation clients agree.

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;
use serde::Serialize;

use crate::admin::notifier::{AdminEvent, AdminNotifier};
use crate::backplane::{Backplane, Broadcast};

/// The simulated provider's name.
pub const SIMULATED: &str = "simulated";

/// How many recent outcomes a status is computed from.
const WINDOW: usize = 20;

/// A provider's status, as operators read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

impl HealthStatus {
    /// Parses a worker's report, case-insensitively.
    pub fn parse(text: &str) -> Option<HealthStatus> {
        [HealthStatus::Healthy, HealthStatus::Degraded, HealthStatus::Unhealthy]
            .into_iter()
            .find(|s| format!("{s:?}").eq_ignore_ascii_case(text.trim()))
    }

    /// From a window of outcomes: a quarter failed is degraded, half is unhealthy.
    fn from_outcomes(outcomes: &VecDeque<bool>) -> HealthStatus {
        let failures = outcomes.iter().filter(|ok| !**ok).count();
        if outcomes.is_empty() || failures * 4 < outcomes.len() {
            HealthStatus::Healthy
        } else if failures * 2 < outcomes.len() {
            HealthStatus::Degraded
        } else {
            HealthStatus::Unhealthy
        }
    }
}

/// One provider's health, the payload of `ProviderHealthStatus` and `ProviderHealthUpdate`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderHealthInfo {
    pub provider: String,
    pub status: HealthStatus,
    pub response_time_ms: Option<u64>,
    pub details: Option<String>,
    pub last_checked: String,
}

struct Provider {
    outcomes: VecDeque<bool>,
    info: ProviderHealthInfo,
}

/// See the module documentation.
pub struct ProviderHealth {
    providers: HashMap<String, Provider>,
    notifier: Addr<AdminNotifier>,
    /// Where changes go first: every node (this one included) adopts them from there.
    backplane: Addr<Backplane>,
    /// The navigation-state hub, told about every change too.
    navigation: Option<Addr<crate::signalr::HubActor>>,
}

impl ProviderHealth {
    /// Knows `names` from the start (each Healthy until told otherwise).
    pub fn new(
        names: impl IntoIterator<Item = String>,
        notifier: Addr<AdminNotifier>,
        backplane: Addr<Backplane>,
    ) -> Self {
        let now = chrono::Utc::now().to_rfc3339();
        let providers = names
            .into_iter()
            .map(|name| {
                let info = ProviderHealthInfo {
                    provider: name.clone(),
                    status: HealthStatus::Healthy,
                    response_time_ms: None,
                    details: None,
                    last_checked: now.clone(),
                };
                (name.to_ascii_lowercase(), Provider { outcomes: VecDeque::new(), info })
            })
            .collect();
        ProviderHealth { providers, notifier, backplane, navigation: None }
    }

    fn all(&self) -> Vec<ProviderHealthInfo> {
        let mut all: Vec<_> = self.providers.values().map(|p| p.info.clone()).collect();
        all.sort_by(|a, b| a.provider.cmp(&b.provider));
        all
    }

    /// Announces a change through the backplane when the status (or reported details) moved.
    fn changed(&mut self, name: &str, before: Option<ProviderHealthInfo>) {
        let Some(p) = self.providers.get(name) else { return };
        let moved = before.as_ref().is_none_or(|b| b.status != p.info.status || b.details != p.info.details);
        if moved {
            let previous = before.map(|b| b.status);
            self.backplane.do_send(Broadcast::ProviderHealth { info: p.info.clone(), previous });
        }
    }
}

impl Actor for ProviderHealth {
    type Context = Context<Self>;
}

/// Attaches the navigation-state hub once it exists.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachNavigation(pub Addr<crate::signalr::HubActor>);

impl Handler<AttachNavigation> for ProviderHealth {
    type Result = ();
    fn handle(&mut self, msg: AttachNavigation, _: &mut Self::Context) {
        self.navigation = Some(msg.0);
    }
}

/// A provider's health as the node that noticed the change computed it (this node included): the table
/// takes it, and this node's operators and navigation clients are told.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adopt {
    pub info: ProviderHealthInfo,
    /// The status before the change, as the node that noticed it saw it.
    pub previous: Option<HealthStatus>,
    /// Noticed by another node: this node's own recent outcomes no longer describe the status.
    pub remote: bool,
}

impl Handler<Adopt> for ProviderHealth {
    type Result = ();
    fn handle(&mut self, msg: Adopt, _: &mut Self::Context) {
        let Adopt { info, previous, remote } = msg;
        // Only known providers: nodes share their configuration, and a stray name must not grow the table.
        let Some(p) = self.providers.get_mut(&info.provider.to_ascii_lowercase()) else { return };
        p.info = info.clone();
        if remote {
            // A fresh window, as after a worker's report: otherwise this node's next outcome would judge
            // from its own older outcomes and flip the status back, and nodes would take turns.
            p.outcomes.clear();
        }
        self.notifier.do_send(AdminEvent::ProviderHealth(info.clone()));
        if let Some(hub) = &self.navigation {
            crate::hubs::navigation_state::provider_health_changed(hub, &info, previous);
        }
    }
}

/// A finished task of a provider: `ok` when it completed, with how long it took.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordOutcome {
    pub provider: String,
    pub ok: bool,
    pub response_time_ms: Option<u64>,
}

impl Handler<RecordOutcome> for ProviderHealth {
    type Result = ();
    fn handle(&mut self, msg: RecordOutcome, _: &mut Self::Context) {
        let key = msg.provider.to_ascii_lowercase();
        // Only known providers: a worker cannot grow this table with made-up names.
        let Some(p) = self.providers.get_mut(&key) else { return };
        let before = p.info.clone();
        p.outcomes.push_back(msg.ok);
        while p.outcomes.len() > WINDOW {
            p.outcomes.pop_front();
        }
        p.info.status = HealthStatus::from_outcomes(&p.outcomes);
        p.info.details = None;
        if msg.response_time_ms.is_some() {
            p.info.response_time_ms = msg.response_time_ms;
        }
        p.info.last_checked = chrono::Utc::now().to_rfc3339();
        self.changed(&key, Some(before));
    }
}

/// A worker's report on a provider; `None` if the provider is unknown.
#[derive(Message)]
#[rtype(result = "Option<ProviderHealthInfo>")]
pub struct Report {
    pub provider: String,
    pub status: HealthStatus,
    pub response_time_ms: Option<u64>,
    pub details: Option<String>,
}

impl Handler<Report> for ProviderHealth {
    type Result = Option<ProviderHealthInfo>;
    fn handle(&mut self, msg: Report, _: &mut Self::Context) -> Self::Result {
        let key = msg.provider.to_ascii_lowercase();
        let p = self.providers.get_mut(&key)?;
        let before = p.info.clone();
        // A report starts a fresh window, so that the next outcomes are judged from the reported state.
        p.outcomes.clear();
        p.info.status = msg.status;
        p.info.response_time_ms = msg.response_time_ms.or(p.info.response_time_ms);
        p.info.details = msg.details;
        p.info.last_checked = chrono::Utc::now().to_rfc3339();
        let info = p.info.clone();
        self.changed(&key, Some(before));
        Some(info)
    }
}

/// Every provider's health, sorted by name.
#[derive(Message)]
#[rtype(result = "Vec<ProviderHealthInfo>")]
pub struct AllHealth;

impl Handler<AllHealth> for ProviderHealth {
    type Result = MessageResult<AllHealth>;
    fn handle(&mut self, _: AllHealth, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.all())
    }
}

/// One provider's health, by name (case-insensitive).
#[derive(Message)]
#[rtype(result = "Option<ProviderHealthInfo>")]
pub struct GetHealth(pub String);

impl Handler<GetHealth> for ProviderHealth {
    type Result = Option<ProviderHealthInfo>;
    fn handle(&mut self, msg: GetHealth, _: &mut Self::Context) -> Self::Result {
        self.providers.get(&msg.0.to_ascii_lowercase()).map(|p| p.info.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_failure_share() {
        let window = |fails: usize, total: usize| (0..total).map(|i| i >= fails).collect::<VecDeque<_>>();
        assert_eq!(HealthStatus::from_outcomes(&window(0, 0)), HealthStatus::Healthy);
        assert_eq!(HealthStatus::from_outcomes(&window(1, 10)), HealthStatus::Healthy);
        assert_eq!(HealthStatus::from_outcomes(&window(3, 10)), HealthStatus::Degraded);
        assert_eq!(HealthStatus::from_outcomes(&window(5, 10)), HealthStatus::Unhealthy);
        assert_eq!(HealthStatus::parse(" degraded"), Some(HealthStatus::Degraded));
        assert_eq!(HealthStatus::parse("sick"), None);
    }
}
