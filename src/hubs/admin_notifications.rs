//! `/hubs/admin-notifications`: the operators' live view, behind the master key. On connect a connection
//! joins the admins' group and receives `InitialProviderHealth`. Methods: `SubscribeToVirtualKey(id)`,
//! `UnsubscribeFromVirtualKey(id)`, `SubscribeToProvider(name)`, `UnsubscribeFromProvider(name)`,
//! `RefreshProviderHealth()`. The events themselves are sent by [`crate::admin::notifier`].

use std::sync::Arc;

use actix::Addr;
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Value};

use crate::admin::notifier::{key_group, provider_group, ADMINS_GROUP};
use crate::db::virtual_keys as keys;
use crate::db::Database;
use crate::ops::provider_health::{AllHealth, GetHealth, ProviderHealth};
use crate::signalr::hub::{Call, Hub, HubContext, HubError, HubReply, MethodInfo};

/// The hub's path.
pub const PATH: &str = "/hubs/admin-notifications";

const METHODS: &[MethodInfo] = &[
    MethodInfo::unary("SubscribeToVirtualKey", 1),
    MethodInfo::unary("UnsubscribeFromVirtualKey", 1),
    MethodInfo::unary("SubscribeToProvider", 1),
    MethodInfo::unary("UnsubscribeFromProvider", 1),
    MethodInfo::unary("RefreshProviderHealth", 0),
];

/// The hub; every connection was admitted by the master key (see `auth::master_key::MasterKeyHubAuth`).
pub struct AdminNotificationsHub {
    pub db: Database,
    pub health: Addr<ProviderHealth>,
}

fn unavailable<E: std::fmt::Display>(e: E) -> HubError {
    HubError::internal("InvalidOperationException", e.to_string())
}

impl AdminNotificationsHub {
    async fn all_health(&self) -> Result<Value, HubError> {
        let all = self.health.send(AllHealth).await.map_err(unavailable)?;
        Ok(json!(all))
    }

    /// Key ids arrive as numbers or numeric strings (the admin UI holds them as either).
    fn key_id(call: &Call) -> Result<i64, HubError> {
        let raw: Value = call.arg(0)?;
        match &raw {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|id| *id > 0)
        .ok_or_else(|| HubError::hub("Invalid virtual key id"))
    }

    async fn run(&self, call: Call) -> Result<HubReply, HubError> {
        let ctx = &call.ctx;
        match call.method {
            "SubscribeToVirtualKey" => {
                let id = Self::key_id(&call)?;
                match keys::get(&self.db, id).await.map_err(unavailable)? {
                    Some(_) => {
                        ctx.join_group(&key_group(id));
                        ctx.send_caller("SubscribedToVirtualKey", vec![json!(id)]);
                    }
                    None => ctx.send_caller("Error", vec![json!({ "message": format!("Virtual key {id} not found") })]),
                }
            }
            "UnsubscribeFromVirtualKey" => {
                let id = Self::key_id(&call)?;
                ctx.leave_group(&key_group(id));
                ctx.send_caller("UnsubscribedFromVirtualKey", vec![json!(id)]);
            }
            "SubscribeToProvider" => {
                let name: String = call.arg(0)?;
                match self.health.send(GetHealth(name.clone())).await.map_err(unavailable)? {
                    Some(info) => {
                        ctx.join_group(&provider_group(&info.provider));
                        ctx.send_caller("ProviderHealthStatus", vec![json!(info)]);
                        ctx.send_caller("SubscribedToProvider", vec![json!(info.provider)]);
                    }
                    None => ctx.send_caller("Error", vec![json!({ "message": format!("Provider {name} not found") })]),
                }
            }
            "UnsubscribeFromProvider" => {
                let name: String = call.arg(0)?;
                ctx.leave_group(&provider_group(&name));
                ctx.send_caller("UnsubscribedFromProvider", vec![json!(name)]);
            }
            "RefreshProviderHealth" => {
                let all = self.all_health().await?;
                ctx.send_caller("ProviderHealthRefreshed", vec![all]);
            }
            _ => return Err(HubError::hub("Unknown method")),
        }
        Ok(HubReply::Void)
    }
}

impl Hub for AdminNotificationsHub {
    fn methods(&self) -> &'static [MethodInfo] {
        METHODS
    }

    fn invoke(self: Arc<Self>, call: Call) -> LocalBoxFuture<'static, Result<HubReply, HubError>> {
        Box::pin(async move { self.run(call).await })
    }

    fn on_connected(self: Arc<Self>, ctx: HubContext) -> LocalBoxFuture<'static, Result<(), HubError>> {
        Box::pin(async move {
            ctx.join_group(ADMINS_GROUP);
            let all = self.all_health().await?;
            ctx.send_caller("InitialProviderHealth", vec![all]);
            Ok(())
        })
    }
}
