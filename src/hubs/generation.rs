//! What the image and video generation hubs share: subscribing a connection to its own key's tasks.
//! A connection joins a task's group only after this checked that the task belongs to its key, then
//! gets the task's latest state at once, so a late subscriber never misses the end.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use crate::db::tasks;
use crate::db::Database;
use crate::generation::updates::TaskEvent;
use crate::generation::TaskKind;
use crate::signalr::hub::{Call, Hub, HubError, HubReply, MethodInfo};

/// A generation hub for one kind of task.
pub struct GenerationHub {
    pub kind: TaskKind,
    pub db: Database,
    pub methods: &'static [MethodInfo],
    pub subscribe: &'static str,
}

impl GenerationHub {
    async fn subscribe(&self, call: &Call, join: bool) -> Result<HubReply, HubError> {
        let kind = self.kind;
        let user = call.ctx.user.clone().ok_or_else(|| HubError::hub("Unauthorized"))?;
        let id: String = call.arg(0).map_err(|_| HubError::hub(kind.bad_id()))?;
        let id = uuid::Uuid::parse_str(id.trim()).map_err(|_| HubError::hub(kind.bad_id()))?.to_string();
        let task = tasks::get(&self.db, &id)
            .await
            .map_err(|e| HubError::internal("DbException", e.to_string()))?
            .filter(|t| t.kind == kind.name())
            .ok_or_else(|| HubError::hub(kind.not_found()))?;
        if task.virtual_key_id.to_string() != user.id {
            return Err(HubError::hub(kind.not_yours()));
        }
        if !join {
            call.ctx.leave_group(&kind.group(&id));
            return Ok(HubReply::Void);
        }
        // Join first, then read the state: an update in between arrives twice at worst, never not at all.
        call.ctx.join_group(&kind.group(&id));
        let latest = tasks::get(&self.db, &id).await.ok().flatten().unwrap_or(task);
        if latest.status != "queued" || latest.progress > 0 {
            if let Some((method, args)) = TaskEvent::from_row(&latest).hub_event() {
                call.ctx.send_caller(method, args);
            }
        }
        Ok(HubReply::Void)
    }
}

impl Hub for GenerationHub {
    fn methods(&self) -> &'static [MethodInfo] {
        self.methods
    }

    fn invoke(self: Arc<Self>, call: Call) -> LocalBoxFuture<'static, Result<HubReply, HubError>> {
        Box::pin(async move {
            let join = call.method == self.subscribe;
            self.subscribe(&call, join).await
        })
    }
}
