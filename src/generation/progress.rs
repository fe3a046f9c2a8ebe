//! The TaskProgress actor: pulls stored task updates (from its mailbox on one node, or from the Redis
//! updates stream, which every node reads) and pushes each to the subscribers' group of that task on
//! its hub. The group only ever holds the owner's connections.

use std::collections::HashMap;

use actix::prelude::*;

use super::updates::TaskEvent;
use super::TaskKind;
use crate::signalr::hub_actor::{HubActor, Outgoing, Target};

/// See the module documentation.
#[derive(Default)]
pub struct TaskProgress {
    hubs: HashMap<TaskKind, Addr<HubActor>>,
    redis: Option<(deadpool_redis::Pool, String)>,
}

impl TaskProgress {
    /// With `redis`, the actor reads the updates stream; without, updates arrive in its mailbox.
    pub fn new(redis: Option<(deadpool_redis::Pool, String)>) -> Self {
        TaskProgress { hubs: HashMap::new(), redis }
    }
}

impl Actor for TaskProgress {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(100_000);
        if let Some((pool, stream)) = self.redis.clone() {
            let me = ctx.address();
            ctx.spawn(read_stream(pool, stream, me).into_actor(self));
        }
    }
}

/// Follows the Redis updates stream from its end, forever.
async fn read_stream(pool: deadpool_redis::Pool, stream: String, me: Addr<TaskProgress>) {
    crate::redis_pool::follow_stream(pool, stream, "task updates", |entry| {
        let payload: Option<String> = entry.get("task");
        match payload.as_deref().map(serde_json::from_str::<TaskEvent>) {
            Some(Ok(event)) => me.do_send(PublishTask(event)),
            _ => tracing::warn!(id = %entry.id, "task updates stream: unreadable entry skipped"),
        }
    })
    .await
}

/// Makes a hub the destination of one kind of task.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterHub(pub TaskKind, pub Addr<HubActor>);

impl Handler<RegisterHub> for TaskProgress {
    type Result = ();
    fn handle(&mut self, msg: RegisterHub, _: &mut Self::Context) {
        self.hubs.insert(msg.0, msg.1);
    }
}

/// A stored task state to deliver.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PublishTask(pub TaskEvent);

impl Handler<PublishTask> for TaskProgress {
    type Result = ();
    fn handle(&mut self, msg: PublishTask, ctx: &mut Self::Context) {
        let event = msg.0;
        let Some(kind) = TaskKind::parse(&event.kind) else { return };
        let Some(hub) = self.hubs.get(&kind) else { return };
        let Some((method, args)) = event.hub_event() else { return };
        crate::ops::metrics::TASK_UPDATES_PUBLISHED.inc();
        let latency_ms = crate::db::now_ms().saturating_sub(event.stored_at);
        crate::ops::metrics::DELIVERY_LATENCY.observe(latency_ms as f64 / 1000.0);
        let send = hub.send(Outgoing::invocation(Target::Group(kind.group(&event.id)), method, args));
        ctx.spawn(
            async move {
                if let Ok(recipients) = send.await {
                    crate::ops::metrics::TASK_UPDATES_DELIVERED.add(recipients as u64);
                }
            }
            .into_actor(self),
        );
    }
}
