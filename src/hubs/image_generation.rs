//! `/hubs/image-generation`: `SubscribeToTask` / `UnsubscribeFromTask`; events `TaskProgress`,
//! `TaskCompleted`, `TaskFailed` for the caller's own tasks only.

use super::generation::GenerationHub;
use crate::db::Database;
use crate::generation::TaskKind;
use crate::signalr::MethodInfo;

const METHODS: &[MethodInfo] = &[MethodInfo::unary("SubscribeToTask", 1), MethodInfo::unary("UnsubscribeFromTask", 1)];

/// The hub.
pub fn hub(db: Database) -> GenerationHub {
    GenerationHub { kind: TaskKind::Image, db, methods: METHODS, subscribe: "SubscribeToTask" }
}
