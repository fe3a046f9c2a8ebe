//! `/hubs/video-generation`: `SubscribeToRequest` / `UnsubscribeFromRequest`; events `RequestProgress`,
//! `RequestCompleted`, `RequestFailed` for the caller's own requests only.

use super::generation::GenerationHub;
use crate::db::Database;
use crate::generation::TaskKind;
use crate::signalr::MethodInfo;

const METHODS: &[MethodInfo] =
    &[MethodInfo::unary("SubscribeToRequest", 1), MethodInfo::unary("UnsubscribeFromRequest", 1)];

/// The hub.
pub fn hub(db: Database) -> GenerationHub {
    GenerationHub { kind: TaskKind::Video, db, methods: METHODS, subscribe: "SubscribeToRequest" }
}
