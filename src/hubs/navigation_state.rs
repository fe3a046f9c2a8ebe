//! `/hubs/navigation-state`: the operators' web UI follows model and provider state here. It takes no
//! credential, so it is reachable only from the networks in `navigation.allowed_networks` (loopback by
//! default; others get 403 at negotiate and connect). On connect a connection joins
//! `navigation-updates`; methods `SubscribeToModel(id)`, `UnsubscribeFromModel(id)`,
//! `RequestCurrentState()` (→ `StateUpdateRequested {timestamp}`). Provider health changes are pushed as
//! `NavigationStateUpdate` to everyone and as `ModelUpdate` to the subscribers of that provider's models,
//! typed `ProviderHealthChanged`; when the change makes the provider's models unavailable (it became
//! Unhealthy) or available again, a `ModelAvailabilityChanged` update follows the same way.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use actix::Addr;
use actix_web::HttpRequest;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use crate::ops::provider_health::{HealthStatus, ProviderHealthInfo};
use crate::signalr::endpoint::{AuthRejection, Authenticator};
use crate::signalr::hub::{Call, Hub, HubContext, HubError, HubReply, MethodInfo};
use crate::signalr::hub_actor::{HubActor, Outgoing, Target};
use crate::signalr::ConnectionUser;

/// The hub's path.
pub const PATH: &str = "/hubs/navigation-state";

/// Every connection of the hub is in this group.
pub const UPDATES_GROUP: &str = "navigation-updates";

const METHODS: &[MethodInfo] = &[
    MethodInfo::unary("SubscribeToModel", 1),
    MethodInfo::unary("UnsubscribeFromModel", 1),
    MethodInfo::unary("RequestCurrentState", 0),
];

/// Longest model id accepted (ids become group names).
const MAX_MODEL_ID: usize = 200;

/// The provider that serves a model: `sim-…` the simulated one, `provider/model` that provider.
pub fn provider_of(model: &str) -> Option<String> {
    if crate::generation::simulated::handles(model) {
        return Some(crate::ops::provider_health::SIMULATED.to_string());
    }
    model.split_once('/').map(|(p, _)| p.to_ascii_lowercase())
}

fn provider_group(provider: &str) -> String {
    format!("provider-models:{}", provider.to_ascii_lowercase())
}

/// The hub. It remembers which models each connection follows, so that a connection stays in a
/// provider's group while it follows any model of that provider.
#[derive(Default)]
pub struct NavigationStateHub {
    followed: Mutex<HashMap<Arc<str>, HashSet<String>>>,
}

impl NavigationStateHub {
    fn model_id(call: &Call) -> Result<String, HubError> {
        let raw: Value = call.arg(0)?;
        let id = match raw {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        if id.is_empty() || id.len() > MAX_MODEL_ID {
            return Err(HubError::hub("Invalid model id"));
        }
        Ok(id)
    }

    fn follow(&self, ctx: &HubContext, model: &str, on: bool) {
        let provider = provider_of(model);
        let Ok(mut followed) = self.followed.lock() else { return };
        let models = followed.entry(ctx.connection_id.clone()).or_default();
        if on {
            models.insert(model.to_string());
        } else {
            models.remove(model);
        }
        if let Some(provider) = provider {
            let still = models.iter().any(|m| provider_of(m).as_deref() == Some(provider.as_str()));
            if still {
                ctx.join_group(&provider_group(&provider));
            } else {
                ctx.leave_group(&provider_group(&provider));
            }
        }
        if models.is_empty() {
            followed.remove(&ctx.connection_id);
        }
    }
}

impl Hub for NavigationStateHub {
    fn methods(&self) -> &'static [MethodInfo] {
        METHODS
    }

    fn invoke(self: Arc<Self>, call: Call) -> LocalBoxFuture<'static, Result<HubReply, HubError>> {
        Box::pin(async move {
            let ctx = &call.ctx;
            match call.method {
                "SubscribeToModel" | "UnsubscribeFromModel" => {
                    let id = Self::model_id(&call)?;
                    let on = call.method == "SubscribeToModel";
                    if on {
                        ctx.join_group(&format!("model:{id}"));
                    } else {
                        ctx.leave_group(&format!("model:{id}"));
                    }
                    self.follow(ctx, &id, on);
                }
                "RequestCurrentState" => {
                    ctx.send_caller(
                        "StateUpdateRequested",
                        vec![json!({ "timestamp": chrono::Utc::now().to_rfc3339() })],
                    );
                }
                _ => return Err(HubError::hub("Unknown method")),
            }
            Ok(HubReply::Void)
        })
    }

    fn on_connected(self: Arc<Self>, ctx: HubContext) -> LocalBoxFuture<'static, Result<(), HubError>> {
        Box::pin(async move {
            ctx.join_group(UPDATES_GROUP);
            Ok(())
        })
    }

    fn on_disconnected(self: Arc<Self>, ctx: HubContext) -> LocalBoxFuture<'static, ()> {
        if let Ok(mut followed) = self.followed.lock() {
            followed.remove(&ctx.connection_id);
        }
        Box::pin(async {})
    }
}

/// Pushes a provider health change to the hub's clients, and a change of its models' availability
/// when the provider went to or from Unhealthy (from `previous`).
pub fn provider_health_changed(hub: &Addr<HubActor>, info: &ProviderHealthInfo, previous: Option<HealthStatus>) {
    let data = json!({
        "provider": info.provider,
        "status": info.status,
        "responseTimeMs": info.response_time_ms,
        "details": info.details,
        "timestamp": info.last_checked,
    });
    push(hub, &info.provider, json!({ "type": "ProviderHealthChanged", "data": data }));
    let available = info.status != HealthStatus::Unhealthy;
    let was_available = previous.is_none_or(|s| s != HealthStatus::Unhealthy);
    if available != was_available {
        let data = json!({
            "provider": info.provider,
            "available": available,
            "status": info.status,
            "timestamp": info.last_checked,
        });
        push(hub, &info.provider, json!({ "type": "ModelAvailabilityChanged", "data": data }));
    }
}

/// One update: `NavigationStateUpdate` to everyone, `ModelUpdate` to the followers of the provider's models.
fn push(hub: &Addr<HubActor>, provider: &str, update: Value) {
    hub.do_send(Outgoing::invocation(
        Target::Group(UPDATES_GROUP.into()),
        "NavigationStateUpdate",
        vec![update.clone()],
    ));
    hub.do_send(Outgoing::invocation(Target::Group(provider_group(provider)), "ModelUpdate", vec![update]));
}

/// One allowed network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `::1/128` or a bare address (a single host).
    pub fn parse(text: &str) -> Result<Network, String> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("'{text}' is not an address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("'{text}': bad prefix"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let bits = |a: IpAddr| -> (u128, u32) {
            match a {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((net, width), (addr, addr_width)) = (bits(self.addr), bits(ip));
        if width != addr_width {
            return false;
        }
        let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
        net & mask == addr & mask
    }
}

/// Admits requests whose peer address is in an allowed network, anonymously; refuses others with 403.
/// The peer is the TCP peer: put a proxy in front only if it is itself on an allowed network.
pub struct NetworkAllowList {
    pub networks: Vec<Network>,
}

impl Authenticator for NetworkAllowList {
    fn authenticate(
        &self,
        req: &HttpRequest,
    ) -> LocalBoxFuture<'static, Result<Option<ConnectionUser>, AuthRejection>> {
        let allowed = req.peer_addr().is_some_and(|peer| self.networks.iter().any(|n| n.contains(peer.ip())));
        if !allowed {
            tracing::warn!(peer = ?req.peer_addr().map(|p| p.ip()), "navigation hub refused an address outside navigation.allowed_networks");
        }
        Box::pin(std::future::ready(if allowed { Ok(None) } else { Err(AuthRejection::Forbidden) }))
    }

    fn required(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let lo = Network::parse("127.0.0.0/8").unwrap();
        assert!(lo.contains("127.1.2.3".parse().unwrap()));
        assert!(lo.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        assert!(Network::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(!Network::parse("::1").unwrap().contains("127.0.0.1".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("nope").is_err());
        assert_eq!(provider_of("sim-image").as_deref(), Some("simulated"));
        assert_eq!(provider_of("OpenAI/dall-e").as_deref(), Some("openai"));
        assert_eq!(provider_of("plain"), None);
    }
}
